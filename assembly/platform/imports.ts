// The only doors out of the wasm sandbox. The C platform layer (firmware/platform.c) implements
// them on bare metal; tests/sim implements them in Node for the unit tests. Keep this list short:
// everything that is not a CPU instruction belongs in AssemblyScript.

// Port I/O (x86 IN/OUT). Values are zero-extended.
@external("env", "port_in8") export declare function portIn8(port: u32): u32;
@external("env", "port_in16") export declare function portIn16(port: u32): u32;
@external("env", "port_in32") export declare function portIn32(port: u32): u32;
@external("env", "port_out8") export declare function portOut8(port: u32, value: u32): void;
@external("env", "port_out16") export declare function portOut16(port: u32, value: u32): void;
@external("env", "port_out32") export declare function portOut32(port: u32, value: u32): void;

// MMIO on physical addresses (device registers in BARs). Volatile, exactly the access width asked for.
@external("env", "mmio_read8") export declare function mmioRead8(addr: u64): u32;
@external("env", "mmio_read16") export declare function mmioRead16(addr: u64): u32;
@external("env", "mmio_read32") export declare function mmioRead32(addr: u64): u32;
@external("env", "mmio_read64") export declare function mmioRead64(addr: u64): u64;
@external("env", "mmio_write8") export declare function mmioWrite8(addr: u64, value: u32): void;
@external("env", "mmio_write16") export declare function mmioWrite16(addr: u64, value: u32): void;
@external("env", "mmio_write32") export declare function mmioWrite32(addr: u64, value: u32): void;
@external("env", "mmio_write64") export declare function mmioWrite64(addr: u64, value: u64): void;

// Physical address of wasm address 0. Memory is identity-mapped, so a wasm pointer p is the
// DMA address memoryBase() + p.
@external("env", "memory_base") export declare function memoryBase(): u64;

// Full memory barrier. An opaque call, so neither asc/binaryen nor clang moves ring updates across it.
@external("env", "barrier") export declare function barrier(): void;

// Monotonic clock in nanoseconds since reset, and the frequency it was calibrated from.
@external("env", "clock_ns") export declare function clockNs(): u64;
@external("env", "clock_hz") export declare function clockHz(): u64;

// Write len bytes at wasm address ptr to the debug console (port 0x402).
@external("env", "log_write") export declare function logWrite(ptr: usize, len: u32): void;

// Nothing to do in the last poll: the platform may use the moment (deferred log output).
@external("env", "idle") export declare function platformIdle(): void;

// The interrupt vector the platform handles for a device's MSI-X message (it sets up the local
// APIC on the first call); 0 when it has none (then the firmware only polls).
@external("env", "interrupt_vector") export declare function interruptVector(): u32;

// Halts until an interrupt arrives or timeoutNs pass; while deferred log bytes wait it writes a
// piece of them and returns without halting. Interrupts are off again on return.
@external("env", "wait_for_interrupt") export declare function waitForInterrupt(timeoutNs: u64): void;

// End the run: isa-debug-exit when QEMU has one (exit status (code << 1) | 1), else halt forever.
@external("env", "exit") export declare function platformExit(code: u32): void;

// The boot loader's kernel command line (PVH's hvm_start_info; empty on the flash image): copies
// up to `capacity` bytes to wasm address ptr and returns the whole line's length.
@external("env", "command_line") export declare function commandLine(ptr: usize, capacity: u32): u32;
