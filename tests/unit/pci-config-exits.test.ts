// PCI bring-up as config port accesses: under a hypervisor each access to 0xCF8/0xCFC is a VM
// exit (100-300 us under nested KVM here), so the scan and resource assignment count them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Machine } from "../sim/machine";
import { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT } from "../sim/pci-config";
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

test("bring-up never selects the config register that is already selected", async () => {
  const m = await deviceMachine();
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

test("scan and resource assignment of the q35 bus stay within their config access budget", async () => {
  const m = await deviceMachine();
  const accesses = recordConfigPorts(m);
  assert.equal(m.exports.fw_device_init(), 1, m.logText());
  // 32 slots and 7 more functions of 00:1f probed, 5 functions recorded, 6 BARs sized on each,
  // the virtio capabilities read (one header dword each), one command write to claim the device:
  // 264 accesses; with decoding turned on for every function and cap_len and cfg_type read
  // separately, 289; reading each register separately, with a select before every access and
  // sizing BARs with a read-restore, 502.
  assert.ok(accesses.length <= 270, `${accesses.length} config port accesses`);
});
