/* The PVH loader's start info (firmware/pvh-boot.c). */
#ifndef FW_PVH_BOOT_H
#define FW_PVH_BOOT_H

#include <stdint.h>

#define PVH_COMMAND_LINE_MAX 1024

/* Reads and logs hvm_start_info when the image was entered through PVH; nothing otherwise. */
void pvh_boot_read(void);
/* The command line the loader passed (length 0: none, or not a PVH boot). */
uint32_t pvh_command_line(const char **text);

#endif
