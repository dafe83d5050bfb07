// The simulated machine the unit tests run the firmware's wasm on: it serves every `env` import
// (assembly/platform/imports.ts) from TypeScript. Port I/O goes to the PCI config mechanism,
// I/O BARs, debugcon (0x402), isa-debug-exit (0xf4) and fw_cfg (0x510/0x511); MMIO goes to the
// BARs the firmware assigned; the wasm memory is guest RAM at memoryBase (DMA = base + pointer).
// Deterministic: the clock moves 1 us per clock_ns call and when a test advances it.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { DEBUG_EXIT_PORT, DEBUGCON_PORT, ExitCounter, ExitCounts, portClass, QUEUE_NAMES } from "./exit-counter";
import { FwCfg, FW_CFG_DATA_PORT, FW_CFG_SELECTOR_PORT } from "./fw-cfg";
import { GuestMemory, wasmGuestMemory } from "../../tools/vsock-model/guest-memory";
import { HostListener, HostSocket, SimHost } from "../../tools/vsock-model/host";
import { PciBus } from "./pci-bus";
import { AccessWidth, allOnes } from "./pci-config";
import { PciFunction } from "./pci-function";
import { addQ35Functions } from "./q35";
import { QueueInterrupts } from "./queue-interrupts";
import { VirtioPciFunction } from "./virtio-pci";
import { MICROVM_MMIO_BASE, MICROVM_MMIO_IRQ, MMIO_WINDOW, VirtioMmioDevice } from "./virtio-mmio";
import { SimIoapic } from "./ioapic";
import { SimVsockDevice } from "../../tools/vsock-model/vsock-device";
import { VSOCK_HOST_CID } from "../../tools/vsock-model/vsock-packet";

export const DEFAULT_WASM_PATH = "build/unit/firmware.wasm";
export const DEFAULT_MEMORY_BASE = 0x1000000;
export { DEBUG_EXIT_PORT, DEBUGCON_PORT };
const WASM_PAGE = 65536;

/** The firmware ended the run (exit import or isa-debug-exit); thrown to unwind the wasm call. */
export class SimExit extends Error {
  constructor(readonly code: number) {
    super(`firmware exited with code ${code}`);
    this.name = "SimExit";
  }
}

/** The wasm aborted (AssemblyScript abort: assertion, bounds check, unreachable with message). */
export class SimTrap extends Error {
  constructor(
    readonly abortMessage: string,
    readonly file: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`wasm abort: ${abortMessage} at ${file}:${line}:${column}`);
    this.name = "SimTrap";
  }
}

/**
 * One call into the firmware made more import calls than its budget without returning: a blocking
 * wait (vs_recv, vs_accept, a connect...) that never ends. Thrown from inside the import so the test
 * fails at once, naming the call, instead of spinning on a clock that moves 1 us per read.
 */
export class SimHang extends Error {
  constructor(
    readonly call: string,
    readonly importCalls: number,
    readonly lastImport: string,
    readonly simulatedNs: bigint,
  ) {
    super(
      `firmware call ${call} did not return within ${importCalls} import calls (last: ${lastImport}; ` +
        `simulated clock ${simulatedNs / 1_000_000n} ms): a blocking call waiting for something that never comes?`,
    );
    this.name = "SimHang";
  }
}

/**
 * Import calls one call into the firmware may make. The unit suite's longest call makes ~200k (a
 * device reset that never completes, waited out for 100 ms); a blocking wait spends ~4 per simulated
 * microsecond, so this is ~0.5 s of simulated waiting and a second or two of real time.
 */
export const DEFAULT_IMPORT_BUDGET = 2_000_000;

export interface MachineOptions {
  wasmPath?: string;
  /** A module's bytes instead of a path (the sim's own tests use small hand-written modules). */
  wasmBytes?: Uint8Array;
  guestCid?: number | bigint;
  queueSizeMax?: number;
  /** false: no vsock function on the bus (m.device is null). */
  vsock?: boolean;
  hostBufAlloc?: number;
  /** Host credit updates as Linux >= 6.8 sends them (also whenever a read empties the queue). */
  hostCreditUpdateOnDrain?: boolean;
  /** Host sockets keep at most min(guest's buf_alloc, their own) in flight (Linux's TX credit cap). */
  hostCapTxCredit?: boolean;
  /** PCI device number of the vsock function on bus 0 (QEMU -nodefaults puts the first -device at 1). */
  vsockSlot?: number;
  deviceFeatures?: bigint;
  refuseFeatures?: boolean;
  notifyOffMultiplier?: number;
  memoryBase?: number;
  clockHz?: bigint;
  /** fw_cfg files by full name; `options` adds opt/vsockfw/<name> entries. false: no fw_cfg at all. */
  fwCfg?: boolean;
  fwCfgFiles?: Record<string, string | Uint8Array>;
  /** false: fw_cfg without its DMA interface (byte-wide data port only). */
  fwCfgDma?: boolean;
  options?: Record<string, string>;
  /** More functions on the bus (built against the bus so they can route BARs). */
  extraFunctions?: (bus: PciBus) => void;
  /** Print each firmware log line to stderr as it arrives (also env VSOCKFW_SIM_LOG=1). */
  echoLog?: boolean;
  /** The vector env.interrupt_vector offers (0: the platform has no interrupts); default 0x30. */
  interruptVector?: number;
  /** MSI-X table entries of the vsock function (0: no MSI-X capability); default 3 like QEMU. */
  msixVectors?: number;
  /** The boot loader's command line (env.command_line). Default "" on PCI; on MMIO QEMU microvm's
   * own `virtio_mmio.device=512@0xfeb00e00:12`. */
  commandLine?: string;
  /** "mmio": the vsock device is a virtio-mmio device at 0xfeb00e00, line 12 (QEMU microvm), and no
   * PCI function; m.vsockMmio is it. Default "pci". */
  transport?: "pci" | "mmio";
  /** The virtio-mmio Version register (2 modern; 1 legacy, which the firmware must not drive). */
  mmioVersion?: number;
  /** Import calls one export call may make before it throws SimHang (default DEFAULT_IMPORT_BUDGET). */
  importBudget?: number;
}

export interface UnknownAccess {
  kind: "port" | "mmio";
  op: "read" | "write";
  address: number | bigint;
  width: number;
  value?: number | bigint;
}

const moduleCache = new Map<string, WebAssembly.Module>();

export class Machine {
  instance!: WebAssembly.Instance;
  exports!: Record<string, any>;
  memory!: WebAssembly.Memory;
  guestMemory!: GuestMemory;
  readonly bus = new PciBus();
  readonly device: SimVsockDevice | null;
  readonly vsockFunction: VirtioPciFunction | null = null;
  readonly vsockMmio: VirtioMmioDevice | null = null;
  readonly ioapic = new SimIoapic();
  readonly host: SimHost;
  readonly fwCfg: FwCfg | null;
  readonly memoryBase: number;
  readonly clockHz: bigint;
  readonly log: string[] = [];
  readonly unknownAccesses: UnknownAccess[] = [];
  readonly aborts: SimTrap[] = [];
  exitCode: number | null = null;
  clock = 0n;
  barrierCount = 0;
  idleCount = 0; // polls that moved no packet (the firmware called env.idle)
  interruptVectorCalls = 0;
  readonly waits: bigint[] = []; // timeouts of env.wait_for_interrupt, in order
  /** Exit accounting (exit-counter.ts): snapshot with exitCounts(), budget the difference. */
  readonly exits = new ExitCounter();
  /** Called at every counted import (kind as in ExitCounts): the device may work while the vCPU is out. */
  onExit: ((kind: string) => void) | null = null;
  /** Device work during a halt; a used entry it writes on a queue armed for interrupts ends the halt. */
  duringHalt: (() => void) | null = null;
  /** How halts ended: an interrupt (after 1 us) or their whole timeout. */
  readonly haltWakes = { interrupt: 0, timeout: 0 };
  private readonly queueInterrupts: { sample(): boolean; take(): boolean; raised: number } | null = null;
  private partialLine = "";
  private readonly echoLog: boolean;
  private scratchNext = 0;
  private scratchEnd = 0;
  // The hang watchdog: import calls since the outermost export call began, and its name.
  importCalls = 0;
  private readonly importBudget: number;
  private currentCall = "";
  private currentArgs: unknown[] = [];
  private callDepth = 0;

  private constructor(readonly options: MachineOptions) {
    this.memoryBase = options.memoryBase ?? DEFAULT_MEMORY_BASE;
    this.clockHz = options.clockHz ?? 2_000_000_000n;
    this.echoLog = options.echoLog ?? process.env.VSOCKFW_SIM_LOG === "1";
    this.importBudget = options.importBudget ?? DEFAULT_IMPORT_BUDGET;
    addQ35Functions(this.bus);
    const memory: GuestMemory = {
      // Bound late: the wasm memory exists only after instantiation.
      read8: (a) => this.guestMemory.read8(a),
      read16: (a) => this.guestMemory.read16(a),
      read32: (a) => this.guestMemory.read32(a),
      read64: (a) => this.guestMemory.read64(a),
      write8: (a, v) => this.guestMemory.write8(a, v),
      write16: (a, v) => this.guestMemory.write16(a, v),
      write32: (a, v) => this.guestMemory.write32(a, v),
      write64: (a, v) => this.guestMemory.write64(a, v),
      readBytes: (a, n) => this.guestMemory.readBytes(a, n),
      writeBytes: (a, b) => this.guestMemory.writeBytes(a, b),
      contains: (a, n) => this.guestMemory.contains(a, n),
    };
    if (options.vsock ?? true) {
      this.device = new SimVsockDevice({
        guestCid: options.guestCid ?? 33,
        queueSizeMax: options.queueSizeMax,
        // VSOCKFW_SIM_DEVICE_FEATURES (hex) replaces the default offer for a whole run, e.g.
        // 0x120000000 (no SEQPACKET): every STREAM test must pass against such a device too.
        features: options.deviceFeatures ?? (process.env.VSOCKFW_SIM_DEVICE_FEATURES ? BigInt(process.env.VSOCKFW_SIM_DEVICE_FEATURES) : undefined),
        hostBufAlloc: options.hostBufAlloc,
        hostCreditUpdateOnDrain: options.hostCreditUpdateOnDrain,
        hostCapTxCredit: options.hostCapTxCredit,
        now: () => this.clock,
      });
      if (options.transport === "mmio") {
        this.vsockMmio = new VirtioMmioDevice({
          memory,
          model: this.device,
          version: options.mmioVersion,
          refuseFeatures: options.refuseFeatures,
          onViolation: (message) => this.device!.violation(message),
        });
        this.device.transport = this.vsockMmio;
        this.queueInterrupts = new MmioLineInterrupts(this.vsockMmio, this.ioapic, MICROVM_MMIO_IRQ);
      }
    } else {
      this.device = null;
    }
    if (this.device && options.transport !== "mmio") {
      this.vsockFunction = new VirtioPciFunction({
        device: options.vsockSlot ?? 1,
        memory,
        model: this.device,
        notifyOffMultiplier: options.notifyOffMultiplier,
        refuseFeatures: options.refuseFeatures,
        msixVectors: options.msixVectors,
        onViolation: (message) => this.device!.violation(message),
      });
      this.device.transport = this.vsockFunction;
      this.queueInterrupts = new QueueInterrupts(this.vsockFunction, this.device);
      this.bus.add(this.vsockFunction);
    }
    if (this.device) {
      this.host = this.device.host;
    } else {
      this.host = new SimHost({
        guestCid: () => 0n,
        sendToGuest: () => {},
        violation: () => {},
        now: () => this.clock,
      });
    }
    options.extraFunctions?.(this.bus);
    this.bus.onMmioAccess = (fn, bar, offset, write) => {
      const region = fn instanceof VirtioPciFunction ? fn.mmioRegion(bar, offset) : "other";
      this.countExit(`mmio.${region}.${write ? "write" : "read"}`);
    };
    const files: Record<string, string | Uint8Array> = { ...(options.fwCfgFiles ?? {}) };
    for (const [name, value] of Object.entries(options.options ?? {})) files[`opt/vsockfw/${name}`] = value;
    // QEMU's q35 offers fw_cfg DMA; `fwCfgDma: false` leaves the byte-wide ports only.
    const dmaMemory = {
      readBytes: (a: number, n: number) => this.guestMemory.readBytes(a, n),
      writeBytes: (a: number, b: Uint8Array) => this.guestMemory.writeBytes(a, b),
    };
    this.fwCfg = options.fwCfg === false ? null : new FwCfg(files, options.fwCfgDma === false ? null : dmaMemory);
  }

  static async create(options: MachineOptions = {}): Promise<Machine> {
    const machine = new Machine(options);
    let module: WebAssembly.Module;
    if (options.wasmBytes) {
      module = await WebAssembly.compile(new Uint8Array(options.wasmBytes));
    } else {
      const path = resolve(options.wasmPath ?? DEFAULT_WASM_PATH);
      const cached = moduleCache.get(path);
      module = cached ?? (await WebAssembly.compile(readFileSync(path)));
      moduleCache.set(path, module);
    }
    machine.instance = await WebAssembly.instantiate(module, { env: machine.watchImports(machine.imports()) });
    machine.exports = machine.watchExports(machine.instance.exports);
    machine.memory = machine.exports.memory as WebAssembly.Memory;
    machine.guestMemory = wasmGuestMemory(machine.memory, machine.memoryBase);
    const accounting = machine.exports.vsock_test_rx_accounting as ((port: number, cid: bigint, peer: number, field: number) => bigint) | undefined;
    if (accounting && machine.device) {
      // The unit build's hook: the host checks credit integrity on every tick (host.ts).
      const field = (socket: HostSocket, n: number) => Number(accounting(socket.peerPort, VSOCK_HOST_CID, socket.localPort, n));
      machine.host.guestArrived = (socket) => {
        const arrived = field(socket, 0);
        return arrived < 0 ? null : arrived;
      };
      machine.host.guestAccounting = (socket) => {
        const arrived = field(socket, 0);
        return arrived < 0 ? null : { arrived, fwdCnt: field(socket, 1), buffered: field(socket, 2), dropped: field(socket, 3) };
      };
    }
    return machine;
  }

  // ---- stepping ----
  init(): boolean {
    return Boolean(this.exports.fw_init());
  }

  poll(rounds = 1): void {
    for (let i = 0; i < rounds; i++) {
      this.exports.fw_poll();
      this.host.tick();
    }
  }

  runUntil(predicate: () => boolean, maxRounds = 100000): boolean {
    for (let i = 0; i < maxRounds; i++) {
      if (predicate()) return true;
      this.poll();
    }
    return predicate();
  }

  advance(ns: bigint): void {
    this.clock += ns;
    this.host.tick();
  }

  logText(): string {
    return this.log.join("\n");
  }

  /** Log lines matching `pattern`. */
  logLines(pattern: RegExp | string): string[] {
    return this.log.filter((line) => (typeof pattern === "string" ? line.includes(pattern) : pattern.test(line)));
  }

  // ---- wasm memory helpers for calling vs_* from tests ----
  /** A region of wasm memory the firmware's allocator never hands out (pages grown after start-up). */
  scratch(length: number): number {
    const aligned = (Math.max(length, 1) + 15) & ~15;
    if (this.scratchNext + aligned > this.scratchEnd) {
      const pages = Math.ceil(aligned / WASM_PAGE);
      const first = this.memory.grow(pages);
      this.scratchNext = first * WASM_PAGE;
      this.scratchEnd = (first + pages) * WASM_PAGE;
    }
    const pointer = this.scratchNext;
    this.scratchNext += aligned;
    return pointer;
  }

  write(pointer: number, bytes: Uint8Array | string): void {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    new Uint8Array(this.memory.buffer).set(data, pointer);
  }

  read(pointer: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer).slice(pointer, pointer + length);
  }

  // ---- the hang watchdog ----
  // Every export call starts a count; every import call (clock reads, MMIO, barriers: what any wait
  // loop does) adds one. Deterministic, and it catches loops whose own deadline never comes.
  private watchExports(raw: WebAssembly.Exports): Record<string, any> {
    const watched: Record<string, any> = {};
    for (const [name, value] of Object.entries(raw)) {
      if (typeof value !== "function") {
        watched[name] = value;
        continue;
      }
      const call = value as (...args: unknown[]) => unknown;
      watched[name] = (...args: unknown[]) => {
        if (this.callDepth++ === 0) {
          this.importCalls = 0;
          this.currentCall = name;
          this.currentArgs = args;
        }
        try {
          return call(...args);
        } finally {
          this.callDepth--;
        }
      };
    }
    return watched;
  }

  private watchImports(table: Record<string, (...args: any[]) => any>): Record<string, (...args: any[]) => any> {
    const watched: Record<string, (a?: any, b?: any, c?: any, d?: any) => any> = {};
    for (const [name, serve] of Object.entries(table)) {
      watched[name] = (a, b, c, d) => {
        if (++this.importCalls > this.importBudget) throw new SimHang(`${this.currentCall}(${this.currentArgs.join(", ")})`, this.importBudget, name, this.clock);
        return serve(a, b, c, d);
      };
    }
    return watched;
  }

  // ---- the env imports ----
  private imports(): Record<string, (...args: any[]) => any> {
    return {
      port_in8: (port: number) => this.portRead(port >>> 0, 1),
      port_in16: (port: number) => this.portRead(port >>> 0, 2),
      port_in32: (port: number) => this.portRead(port >>> 0, 4),
      port_out8: (port: number, value: number) => this.portWrite(port >>> 0, 1, value & 0xff),
      port_out16: (port: number, value: number) => this.portWrite(port >>> 0, 2, value & 0xffff),
      port_out32: (port: number, value: number) => this.portWrite(port >>> 0, 4, value >>> 0),
      mmio_read8: (address: bigint) => Number(this.mmioRead(address, 1)),
      mmio_read16: (address: bigint) => Number(this.mmioRead(address, 2)),
      mmio_read32: (address: bigint) => Number(this.mmioRead(address, 4)) | 0,
      mmio_read64: (address: bigint) => BigInt.asIntN(64, this.mmioRead(address, 8)),
      mmio_write8: (address: bigint, value: number) => this.mmioWrite(address, 1, BigInt(value & 0xff)),
      mmio_write16: (address: bigint, value: number) => this.mmioWrite(address, 2, BigInt(value & 0xffff)),
      mmio_write32: (address: bigint, value: number) => this.mmioWrite(address, 4, BigInt(value >>> 0)),
      mmio_write64: (address: bigint, value: bigint) => this.mmioWrite(address, 8, BigInt.asUintN(64, value)),
      memory_base: () => BigInt(this.memoryBase),
      barrier: () => {
        this.barrierCount++;
      },
      clock_ns: () => {
        this.countExit("clock");
        this.clock += 1000n;
        return this.clock;
      },
      clock_hz: () => this.clockHz,
      log_write: (pointer: number, length: number) => {
        this.countExit("port.debugcon", length >>> 0);
        this.logBytes(this.read(pointer >>> 0, length >>> 0));
      },
      idle: () => {
        this.countExit("idle");
        this.idleCount++;
      },
      interrupt_vector: () => {
        this.interruptVectorCalls++;
        return this.options.interruptVector ?? 0x30;
      },
      // The halt lasts its whole timeout unless a queue interrupt is pending or duringHalt raises one.
      wait_for_interrupt: (timeout: bigint) => {
        const ns = BigInt.asUintN(64, timeout);
        this.waits.push(ns);
        this.clock += this.halt(ns);
      },
      command_line: (pointer: number, capacity: number) => {
        const fallback = this.vsockMmio ? `virtio_mmio.device=${MMIO_WINDOW}@0x${MICROVM_MMIO_BASE.toString(16)}:${MICROVM_MMIO_IRQ}` : "";
        const text = new TextEncoder().encode(this.options.commandLine ?? fallback);
        this.write(pointer >>> 0, text.subarray(0, capacity >>> 0));
        return text.length;
      },
      exit: (code: number) => this.exit(code >>> 0),
      abort: (message: number, file: number, line: number, column: number) => {
        const trap = new SimTrap(this.readString(message), this.readString(file), line, column);
        this.aborts.push(trap);
        throw trap;
      },
    };
  }

  /** An AssemblyScript string: UTF-16LE, byte length in the u32 before it. */
  readString(pointer: number): string {
    if (!pointer) return "";
    const bytes = new Uint8Array(this.memory.buffer);
    if (pointer < 4 || pointer > bytes.length) return `<bad string 0x${pointer.toString(16)}>`;
    const length = new DataView(this.memory.buffer).getUint32(pointer - 4, true);
    if (pointer + length > bytes.length) return `<bad string 0x${pointer.toString(16)}>`;
    return new TextDecoder("utf-16le").decode(bytes.subarray(pointer, pointer + length));
  }

  private exit(code: number): never {
    this.exitCode = code;
    throw new SimExit(code);
  }

  private logBytes(bytes: Uint8Array): void {
    this.partialLine += new TextDecoder("latin1").decode(bytes);
    let newline;
    while ((newline = this.partialLine.indexOf("\n")) >= 0) {
      const line = this.partialLine.slice(0, newline);
      this.partialLine = this.partialLine.slice(newline + 1);
      this.log.push(line);
      if (this.echoLog) process.stderr.write(`${line}\n`);
    }
  }

  // ---- exit accounting ----
  private countExit(kind: string, n = 1): void {
    this.exits.add(kind, n);
    this.queueInterrupts?.sample();
    this.onExit?.(kind);
  }

  /** The counts so far, with notifies per queue (as the function decoded them) and interrupts. */
  exitCounts(): ExitCounts {
    const counts = this.exits.snapshot();
    QUEUE_NAMES.forEach((name, i) => (counts[`notify.${name}`] = (this.vsockFunction ?? this.vsockMmio)?.notifyCounts[i] ?? 0));
    counts.interrupt = this.queueInterrupts?.raised ?? 0;
    return counts;
  }

  /** How long a halt of `ns` lasts: 1 us when an interrupt ends it, else all of it. */
  private halt(ns: bigint): bigint {
    this.countExit("halt");
    this.duringHalt?.();
    if (this.queueInterrupts?.take()) {
      this.haltWakes.interrupt++;
      return 1000n;
    }
    this.haltWakes.timeout++;
    return ns;
  }

  private portRead(port: number, width: 1 | 2 | 4): number {
    this.countPort(port);
    const config = this.bus.configPortRead(port, width);
    if (config !== undefined) return config | 0;
    if (this.fwCfg && port === FW_CFG_DATA_PORT && width === 1) return this.fwCfg.readByte();
    const dma = width === 4 ? this.fwCfg?.readDma(port) : undefined;
    if (dma !== undefined) return dma | 0;
    if (port === DEBUGCON_PORT && width === 1) return 0xe9; // QEMU's debugcon read-back value
    const bar = this.bus.ioBarRead(port, width);
    if (bar !== undefined) return bar | 0;
    this.unknownAccesses.push({ kind: "port", op: "read", address: port, width });
    return Number(allOnes(width)) | 0;
  }

  private countPort(port: number): void {
    this.countExit(`port.${portClass(port)}`);
  }

  private portWrite(port: number, width: 1 | 2 | 4, value: number): void {
    this.countPort(port);
    if (this.bus.configPortWrite(port, width, value)) return;
    if (this.fwCfg && port === FW_CFG_SELECTOR_PORT && width === 2) return this.fwCfg.select(value);
    if (this.fwCfg && width === 4 && this.fwCfg.writeDma(port, value >>> 0)) return;
    if (port === DEBUGCON_PORT && width === 1) return this.logBytes(Uint8Array.of(value));
    if (port === DEBUG_EXIT_PORT) return this.exit(value);
    if (this.bus.ioBarWrite(port, width, value)) return;
    this.unknownAccesses.push({ kind: "port", op: "write", address: port, width, value });
  }

  private mmioRead(address: bigint, width: AccessWidth): bigint {
    address = BigInt.asUintN(64, address);
    if (this.vsockMmio?.contains(address, width)) {
      this.countExit(`mmio.virtio-mmio.read`);
      return this.vsockMmio.read(Number(address - this.vsockMmio.base), width);
    }
    if (this.ioapic.handles(address)) {
      this.countExit("mmio.other.read");
      return this.ioapic.read(address, width);
    }
    const value = this.bus.mmioRead(BigInt.asUintN(64, address), width);
    if (value !== undefined) return value;
    this.countExit("mmio.other.read"); // no BAR: the LAPIC or nothing
    this.unknownAccesses.push({ kind: "mmio", op: "read", address: BigInt.asUintN(64, address), width });
    return allOnes(width);
  }

  private mmioWrite(address: bigint, width: AccessWidth, value: bigint): void {
    address = BigInt.asUintN(64, address);
    if (this.vsockMmio?.contains(address, width)) {
      this.countExit(`mmio.virtio-mmio.write`);
      return this.vsockMmio.write(Number(address - this.vsockMmio.base), width, value);
    }
    if (this.ioapic.handles(address)) {
      this.countExit("mmio.other.write");
      return this.ioapic.write(address, width, value);
    }
    if (this.bus.mmioWrite(BigInt.asUintN(64, address), width, value)) return;
    this.countExit("mmio.other.write");
    this.unknownAccesses.push({ kind: "mmio", op: "write", address: BigInt.asUintN(64, address), width, value });
  }
}

/**
 * The virtio-mmio device's interrupt through the I/O APIC: a rising edge of its line (InterruptStatus
 * leaving 0) while the line's entry is unmasked raises one interrupt, pending until a halt takes it.
 * No edge while the driver has not acknowledged the last one: the firmware must ack before halting.
 */
class MmioLineInterrupts {
  private seenEdges = 0;
  private pending = false;
  raised = 0;

  constructor(
    private readonly device: VirtioMmioDevice,
    private readonly ioapic: SimIoapic,
    private readonly gsi: number,
  ) {}

  sample(): boolean {
    if (this.device.edges === this.seenEdges) return false;
    this.seenEdges = this.device.edges;
    if (this.ioapic.vector(this.gsi) === null) return false;
    this.pending = true;
    this.raised++;
    return true;
  }

  take(): boolean {
    this.sample();
    const pending = this.pending;
    this.pending = false;
    return pending;
  }
}

export type { HostListener, HostSocket, PciFunction };
