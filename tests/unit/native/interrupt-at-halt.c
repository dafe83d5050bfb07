/* Runs reset-vector/interrupts.asm's three handlers in user space, each entered through the frame
 * an interrupt would push, at the HLT of cpu_wait_for_interrupt and at the STI before it. HLT, CLI
 * and STI are privileged here, so wherever a handler's IRETQ returns to faults at once: the fault's
 * RIP says where that was. An interrupt at the HLT must return past it (to the CLI) and be counted;
 * one anywhere else must return where it was taken. Exit status 0 when every case holds.
 * Built and run by tests/unit/interrupt-at-halt.test.ts. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <ucontext.h>

extern void interrupt_device_entry(void);
extern void interrupt_timer_entry(void);
extern void interrupt_spurious_entry(void);
extern char cpu_halt_instruction[];
extern volatile uint64_t interrupt_before_halt_count;

#define LAPIC_PAGE 0xfee00000ul /* the handlers write the EOI register there */

static sigjmp_buf back;
static volatile uint64_t fault_rip;

static void on_fault(int signal, siginfo_t *info, void *context) {
  (void)signal, (void)info;
  fault_rip = (uint64_t)((ucontext_t *)context)->uc_mcontext.gregs[REG_RIP];
  siglongjmp(back, 1);
}

/* Enters `handler` as the CPU does for an interrupt taken at `rip` (same privilege: SS, RSP,
 * RFLAGS, CS, RIP); never returns, the fault after its IRETQ jumps back. */
static void __attribute__((noinline, noreturn)) interrupt_at(void (*handler)(void), uint64_t rip) {
  __asm__ volatile(
      "mov %%rsp, %%rcx\n\t"
      "xor %%eax, %%eax\n\t"
      "mov %%ss, %%ax\n\t"
      "push %%rax\n\t"
      "push %%rcx\n\t"
      "pushfq\n\t"
      "mov %%cs, %%ax\n\t"
      "push %%rax\n\t"
      "push %1\n\t"
      "jmp *%0\n\t"
      :
      : "r"(handler), "r"(rip)
      : "rax", "rcx", "memory");
  __builtin_unreachable();
}

/* Where the handler returned to, as an offset from the HLT. */
static long returned_to(void (*handler)(void), uint64_t rip) {
  if (sigsetjmp(back, 1) == 0) interrupt_at(handler, rip);
  return (long)(fault_rip - (uint64_t)cpu_halt_instruction);
}

int main(void) {
  if (mmap((void *)LAPIC_PAGE, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
    perror("mmap of the LAPIC page");
    return 2;
  }
  struct sigaction action = {0};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &action, NULL);
  sigaction(SIGILL, &action, NULL);
  struct { const char *name; void (*entry)(void); } handlers[] = {
      {"device", interrupt_device_entry}, {"timer", interrupt_timer_entry}, {"spurious", interrupt_spurious_entry}};
  int failed = 0;
  for (unsigned i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
    uint64_t counted = interrupt_before_halt_count;
    long at_halt = returned_to(handlers[i].entry, (uint64_t)cpu_halt_instruction);
    long counted_at_halt = (long)(interrupt_before_halt_count - counted);
    long at_sti = returned_to(handlers[i].entry, (uint64_t)cpu_halt_instruction - 1);
    long counted_at_sti = (long)(interrupt_before_halt_count - counted) - counted_at_halt;
    int ok = at_halt == 1 && counted_at_halt == 1 && at_sti == -1 && counted_at_sti == 0;
    printf("%s: taken at the HLT -> returned to HLT%+ld (counted %ld); taken at the STI -> HLT%+ld (counted %ld): %s\n",
           handlers[i].name, at_halt, counted_at_halt, at_sti, counted_at_sti, ok ? "ok" : "FAIL");
    failed |= !ok;
  }
  return failed;
}
