/* What a PVH loader hands over (Xen's hvm_start_info, the structure %ebx pointed to at pvh_entry):
 * the command line, for the AssemblyScript side (virtio_mmio.device= entries), and the memory map,
 * checked here against the RAM this image needs. The flash image sees pvh_start_info == 0. */
#include <stdint.h>

#include "clock.h"
#include "debugcon.h"
#include "pvh-boot.h"

#define HVM_START_MAGIC 0x336ec578u
#define HVM_MEMMAP_TYPE_RAM 1
/* Our own RAM: page tables at 64 KiB (rom32 has just cleared them), the image from 1 MiB, the
 * wasm linear memory above it. Anything the loader left there is gone or about to be. */
#define OWN_RAM_START 0x10000ull
#define OWN_RAM_END ((uint64_t)LINEAR_MEMORY_BASE + (uint64_t)LINEAR_MEMORY_PAGES * 65536ull)
#define PAGE_TABLES_END 0x16000ull
#define RAM_IMAGE_START 0x100000ull

extern uint32_t pvh_start_info; /* reset-vector/pvh.asm */

struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr; /* version 1 */
  uint32_t memmap_entries;
  uint32_t reserved;
};

struct hvm_memmap_table_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

static char command_line[PVH_COMMAND_LINE_MAX];
static uint32_t command_line_length;

/* Whether [address, address + bytes) lies where this image has already written (the page tables)
 * or runs (image, .bss, stack): the loader's data there cannot be trusted any more. */
static int overlaps_own_ram(uint64_t address, uint64_t bytes) {
  uint64_t end = address + bytes;
  int in_tables = address < PAGE_TABLES_END && end > OWN_RAM_START;
  int in_image = address < OWN_RAM_END && end > RAM_IMAGE_START;
  return in_tables || in_image;
}

static void copy_command_line(uint64_t address) {
  if (address == 0) return;
  const volatile char *text = (const volatile char *)(uintptr_t)address;
  uint32_t n = 0;
  while (n + 1 < PVH_COMMAND_LINE_MAX && text[n] != 0) {
    command_line[n] = text[n];
    n++;
  }
  command_line[n] = 0;
  command_line_length = n;
}

/* RAM reported by the memory map that covers [start, end). */
static int ram_covers(const struct hvm_memmap_table_entry *map, uint32_t entries, uint64_t start, uint64_t end) {
  for (uint32_t i = 0; i < entries; i++) {
    if (map[i].type == HVM_MEMMAP_TYPE_RAM && map[i].addr <= start && map[i].addr + map[i].size >= end) return 1;
  }
  return 0;
}

void pvh_boot_read(void) {
  if (pvh_start_info == 0) return;
  const struct hvm_start_info *info = (const struct hvm_start_info *)(uintptr_t)pvh_start_info;
  if (overlaps_own_ram(pvh_start_info, sizeof *info) || info->magic != HVM_START_MAGIC) {
    debugcon_line_start("error", "boot");
    debugcon_str("pvh: start_info unusable, ignored start_info=0x");
    debugcon_hex(pvh_start_info, 1);
    debugcon_str("\n");
    return;
  }
  int cmdline_ok = info->cmdline_paddr != 0 && !overlaps_own_ram(info->cmdline_paddr, PVH_COMMAND_LINE_MAX);
  if (cmdline_ok) copy_command_line(info->cmdline_paddr);

  uint32_t entries = info->version >= 1 ? info->memmap_entries : 0;
  const struct hvm_memmap_table_entry *map = (const struct hvm_memmap_table_entry *)(uintptr_t)info->memmap_paddr;
  if (entries != 0 && (map == 0 || overlaps_own_ram(info->memmap_paddr, (uint64_t)entries * sizeof *map))) entries = 0;
  uint64_t ram_bytes = 0;
  for (uint32_t i = 0; i < entries; i++) {
    if (map[i].type == HVM_MEMMAP_TYPE_RAM) ram_bytes += map[i].size;
  }
  debugcon_line_start("info", "boot");
  debugcon_str("pvh start_info=0x");
  debugcon_hex(pvh_start_info, 1);
  debugcon_str(" version=");
  debugcon_dec(info->version);
  debugcon_str(" memmap_entries=");
  debugcon_dec(entries);
  debugcon_str(" ram_bytes=");
  debugcon_dec(ram_bytes);
  debugcon_str(" cmdline_bytes=");
  debugcon_dec(command_line_length);
  /* What ran before the entry (the loader), when the TSC started with the vCPU: the part of
   * reset-to-ready that this image's own clock (zero at the entry) does not see. */
  debugcon_str(" entry_after_us=");
  debugcon_dec(clock_zero_since_tsc_start_ns() / 1000);
  debugcon_str("\n");
  if (!cmdline_ok && info->cmdline_paddr != 0) {
    debugcon_line_start("warn", "boot");
    debugcon_str("pvh: command line lies in the image's own RAM, ignored cmdline=0x");
    debugcon_hex(info->cmdline_paddr, 1);
    debugcon_str("\n");
  }
  if (entries != 0 && !ram_covers(map, entries, RAM_IMAGE_START, OWN_RAM_END)) {
    debugcon_line_start("error", "boot");
    debugcon_str("pvh: the memory map has no RAM under the image and linear memory end=0x");
    debugcon_hex(OWN_RAM_END, 1);
    debugcon_str(" (give the VM more memory)\n");
  }
}

uint32_t pvh_command_line(const char **text) {
  *text = command_line;
  return command_line_length;
}
