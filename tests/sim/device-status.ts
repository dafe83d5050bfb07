// The device status register's rules (virtio 1.2, 2.1 and 3.1.1), the same behind every transport
// (virtio-pci.ts, virtio-mmio.ts): a driver clears no bit without a reset (writing 0),
// FEATURES_OK is granted only for offered features that include VERSION_1, and DRIVER_OK needs
// ACKNOWLEDGE | DRIVER | FEATURES_OK. A broken rule is a violation the tests fail on.
import { VIRTIO_F_VERSION_1, VirtioDeviceModel, VirtioTransport } from "../../tools/vsock-model/virtio-device";

export const VIRTIO_STATUS_ACKNOWLEDGE = 1;
export const VIRTIO_STATUS_DRIVER = 2;
export const VIRTIO_STATUS_DRIVER_OK = 4;
export const VIRTIO_STATUS_FEATURES_OK = 8;
export const VIRTIO_STATUS_NEEDS_RESET = 64;
export const VIRTIO_STATUS_FAILED = 128;

/** Whether FEATURES_OK may be granted for what the driver wrote. */
export function featuresAcceptable(offered: bigint, driver: bigint, refuse: boolean, violation: (m: string) => void): boolean {
  if (refuse) return false;
  if (driver & ~offered) {
    violation(`driver accepted features not offered: 0x${(driver & ~offered).toString(16)}`);
    return false;
  }
  return (driver & VIRTIO_F_VERSION_1) !== 0n;
}

/** The status a non-zero write leaves (FEATURES_OK or DRIVER_OK withheld where refused). */
export function nextDeviceStatus(current: number, value: number, acceptFeatures: () => boolean, violation: (m: string) => void): number {
  if (current & ~value) violation(`status bits cleared without reset (0x${current.toString(16)} -> 0x${value.toString(16)})`);
  const added = value & ~current;
  let next = value;
  if (added & VIRTIO_STATUS_FEATURES_OK && !acceptFeatures()) next &= ~VIRTIO_STATUS_FEATURES_OK;
  const ready = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
  if (added & VIRTIO_STATUS_DRIVER_OK && (next & ready) !== ready) {
    violation(`DRIVER_OK without ACKNOWLEDGE|DRIVER|FEATURES_OK (status 0x${next.toString(16)})`);
    next &= ~VIRTIO_STATUS_DRIVER_OK;
  }
  return next;
}

/** The transport side of a status write: what both simulated transports have. */
export interface StatusRegister extends VirtioTransport {
  status: number;
  readonly model: VirtioDeviceModel;
  readonly refuseFeatures: boolean;
  statusWrites: number[];
  reset(): void;
  violation(message: string): void;
}

/** A driver's write of the status register: 0 resets the transport; otherwise the bits the rules
 * allow are set, FAILED resets the device model and a new DRIVER_OK starts it. */
export function writeDeviceStatus(t: StatusRegister, value: number): void {
  t.statusWrites.push(value);
  if (value === 0) return t.reset();
  const violation = (m: string) => t.violation(m);
  const added = value & ~t.status;
  const next = nextDeviceStatus(t.status, value, () => featuresAcceptable(t.model.deviceFeatures(), t.driverFeatures, t.refuseFeatures, violation), violation);
  t.status = next;
  if (added & VIRTIO_STATUS_FAILED) t.model.reset();
  else if (next & VIRTIO_STATUS_DRIVER_OK && added & VIRTIO_STATUS_DRIVER_OK) t.model.start(t);
}
