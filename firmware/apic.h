/* The local APIC (xAPIC, CPU 0) for the idle halt: a vector for the device's MSI-X message, a
 * one-shot timer for the timeout, and the halt itself. Interrupts are on only inside the halt. */
#ifndef FW_APIC_H
#define FW_APIC_H

#include <stdint.h>

#define APIC_DEVICE_VECTOR 0x30
#define APIC_TIMER_VECTOR 0x31
#define APIC_SPURIOUS_VECTOR 0xff

/* Sets up the APIC and the interrupt gates once; returns APIC_DEVICE_VECTOR, or 0 when the CPU
 * has no usable local APIC (then the firmware only polls). */
uint32_t apic_init(void);
/* Halts until an interrupt or until timeout_ns pass (interrupts off again on return). */
void apic_wait(uint64_t timeout_ns);

#endif
