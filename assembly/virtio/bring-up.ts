// The driver side of device initialisation (virtio 1.2, 3.1.1), transport-independent:
// reset -> ACKNOWLEDGE -> DRIVER -> features -> FEATURES_OK (re-read) ... queues ... -> DRIVER_OK,
// and FAILED with a log line naming the reason when any step goes wrong.
import { clockNs } from "../platform/imports";
import { LEVEL_ERROR, LEVEL_INFO, logBegin, logEnd, logKvHex, logStr } from "../platform/log";
import {
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_VERSION_1,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FAILED,
  VIRTIO_STATUS_FEATURES_OK,
  VirtioError,
  virtioErrorName,
} from "./constants";
import { VirtioTransport } from "./transport";

// QEMU resets synchronously; a device still not reset after this is broken.
const RESET_TIMEOUT_NS: u64 = 100_000_000;
const RESET_MAX_POLLS: i32 = 10_000_000; // in case the clock does not move

// Transport features we accept whenever they are offered. ACCESS_PLATFORM only says addresses
// go through the platform's translation; we identity-map, so physical addresses are right.
// EVENT_IDX: kicks and interrupts are asked for by ring index (split-queue.ts), which lets the
// device skip the ones we would not look at anyway.
const TRANSPORT_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | VIRTIO_F_EVENT_IDX;

export let offeredFeatures: u64 = 0;
export let negotiatedFeatures: u64 = 0;

export function virtioReset(t: VirtioTransport): VirtioError {
  t.setStatus(0);
  const deadline = clockNs() + RESET_TIMEOUT_NS;
  for (let polls = 0; polls < RESET_MAX_POLLS; polls++) {
    if (t.status() == 0) return VirtioError.None;
    if (clockNs() > deadline) break;
  }
  return VirtioError.ResetTimeout;
}

// Reset, announce ourselves, and agree on features: VERSION_1 (required) plus whichever of
// `deviceFeatures` the device offers. On success the device is in FEATURES_OK, ready for queues.
export function virtioNegotiate(t: VirtioTransport, deviceFeatures: u64): VirtioError {
  offeredFeatures = 0;
  negotiatedFeatures = 0;
  const reset = virtioReset(t);
  if (reset != VirtioError.None) return reset;
  t.setStatus(VIRTIO_STATUS_ACKNOWLEDGE);
  t.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  t.disableConfigInterrupt(); // after the reset, which would set it back anyway
  offeredFeatures = t.deviceFeatures();
  if ((offeredFeatures & VIRTIO_F_VERSION_1) == 0) return VirtioError.FeatureVersion1Missing;
  negotiatedFeatures = offeredFeatures & (TRANSPORT_FEATURES | deviceFeatures);
  t.setDriverFeatures(negotiatedFeatures);
  t.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
  if ((t.status() & VIRTIO_STATUS_FEATURES_OK) == 0) return VirtioError.FeaturesNotAccepted;
  if (logBegin(LEVEL_INFO, "virtio")) {
    logStr("features");
    logKvHex("offered", offeredFeatures);
    logKvHex("negotiated", negotiatedFeatures);
    logEnd();
  }
  return VirtioError.None;
}

export function virtioDriverOk(t: VirtioTransport): void {
  t.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

// Gives up on the device: FAILED, so it stops expecting anything from us, and one clear line.
export function virtioFail(t: VirtioTransport, error: VirtioError): void {
  t.setStatus(t.status() | VIRTIO_STATUS_FAILED);
  if (logBegin(LEVEL_ERROR, "virtio")) {
    logStr("device set FAILED: ");
    logStr(virtioErrorName(error));
    logKvHex("status", t.status());
    if (error == VirtioError.FeatureVersion1Missing) logKvHex("offered", offeredFeatures);
    logEnd();
  }
}
