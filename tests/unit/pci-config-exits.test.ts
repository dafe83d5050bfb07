// PCI bring-up as config space accesses: under a hypervisor each access to 0xCF8/0xCFC or to the
// ECAM window is a VM exit (50-300 us under nested KVM here), so the scan and resource assignment
// count them, on q35 with its ECAM window and without it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Machine } from "../sim/machine";
import { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT } from "../sim/pci-config";
import { exitDiff, formatExits, mmioAccesses, pciConfigExits } from "../sim/exit-counter";
import { MCH_PCIEXBAR } from "../sim/q35";
import { deviceMachine } from "./device-harness";

interface PortAccess {
  port: number;
  write: boolean;
  value?: number;
}

/** Records every config port access the firmware makes on the machine's PCI bus. */
function recordConfigPorts(m: Machine): PortAccess[] {
  const accesses: PortAccess[] = [];
  const isConfigPort = (port: number) => port === PCI_CONFIG_ADDRESS_PORT || (port >= PCI_CONFIG_DATA_PORT && port < PCI_CONFIG_DATA_PORT + 4);
  const bus = m.bus;
  const read = bus.configPortRead.bind(bus);
  const write = bus.configPortWrite.bind(bus);
  bus.configPortRead = (port, width) => {
    if (isConfigPort(port)) accesses.push({ port, write: false });
    return read(port, width);
  };
  bus.configPortWrite = (port, width, value) => {
    if (isConfigPort(port)) accesses.push({ port, write: true, value });
    return write(port, width, value);
  };
  return accesses;
}

/** The q35 host bridge refuses to enable its ECAM window (PCIEXBAR reads back disabled). */
function withoutEcam(m: Machine): Machine {
  const mch = m.bus.find(0, 0, 0)!;
  for (let i = 0; i < 8; i++) mch.writeMask[MCH_PCIEXBAR + i] = 0;
  return m;
}

test("q35: config space goes through the ECAM window the firmware enables, ports only to enable it", async () => {
  const m = await deviceMachine();
  const accesses = recordConfigPorts(m);
  const before = m.exitCounts();
  assert.equal(m.exports.fw_device_init(), 1, m.logText());
  const d = exitDiff(m.exitCounts(), before);
  assert.equal(m.logLines(/info pci: ecam base=0xb0000000/).length, 1, m.logText());
  assert.ok(m.bus.ecam !== null && m.bus.ecam.base === 0xb0000000n);
  // The host bridge's ids, PCIEXBAR and its high half read, PCIEXBAR written: 4 data accesses.
  assert.equal(accesses.filter((a) => a.port !== PCI_CONFIG_ADDRESS_PORT).length, 4, JSON.stringify(accesses));
  // Everything else through the window: one exit per access, no select. 32 slots and 7 more
  // functions of 00:1f probed, 5 functions recorded, 6 BARs sized on each, the virtio capabilities
  // read, one command write, and the host bridge's ids read once more to check the window: 154
  // (116 reads, 38 writes). Through the ports the same costs 264. No margin: one more access is a
  // change to look at.
  assert.ok(mmioAccesses(d, "pci-config") <= 154, `${mmioAccesses(d, "pci-config")} ECAM accesses: ${formatExits(d)}`);
  assert.ok(pciConfigExits(d) <= 162, `${pciConfigExits(d)} config exits: ${formatExits(d)}`);
});

test("without an ECAM window: a warn line, and the ports do the whole scan", async () => {
  const m = withoutEcam(await deviceMachine());
  const accesses = recordConfigPorts(m);
  assert.equal(m.exports.fw_device_init(), 1, m.logText());
  assert.equal(m.bus.ecam, null);
  assert.equal(m.logLines(/warn pci: ecam window does not answer/).length, 1, m.logText());
  assert.equal(m.logLines(/info pci: 00:01\.0 1af4:1053/).length, 1, m.logText());
  assert.ok(accesses.length > 200, `${accesses.length} config port accesses: the scan went through the ports`);
});

test("bring-up through the ports never selects the config register that is already selected", async () => {
  const m = withoutEcam(await deviceMachine());
  const accesses = recordConfigPorts(m);
  assert.equal(m.exports.fw_device_init(), 1, m.logText());
  const selects = accesses.filter((a) => a.port === PCI_CONFIG_ADDRESS_PORT && a.write);
  assert.ok(selects.length > 0);
  let current: number | undefined;
  for (const s of selects) {
    assert.notEqual(s.value, current, `0x${s.value!.toString(16)} selected twice in a row`);
    current = s.value;
  }
});

test("scan and resource assignment of the q35 bus through the ports stay within their config access budget", async () => {
  const m = withoutEcam(await deviceMachine());
  const accesses = recordConfigPorts(m);
  assert.equal(m.exports.fw_device_init(), 1, m.logText());
  // 32 slots and 7 more functions of 00:1f probed, 5 functions recorded, 6 BARs sized on each,
  // the virtio capabilities read (one header dword each), one command write to claim the device:
  // 264 accesses, plus 6 for trying the ECAM window (ids, PCIEXBAR and its high half read, the
  // enable written); with decoding turned on for every function and cap_len and cfg_type read
  // separately, 289; reading each register separately, with a select before every access and
  // sizing BARs with a read-restore, 502.
  assert.ok(accesses.length <= 276, `${accesses.length} config port accesses`);
});
