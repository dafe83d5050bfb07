// Names from the virtio 1.2 specification, shared by the transport, the queues and the devices.

// 2.1 Device Status Field.
export const VIRTIO_STATUS_ACKNOWLEDGE: u32 = 1;
export const VIRTIO_STATUS_DRIVER: u32 = 2;
export const VIRTIO_STATUS_DRIVER_OK: u32 = 4;
export const VIRTIO_STATUS_FEATURES_OK: u32 = 8;
export const VIRTIO_STATUS_DEVICE_NEEDS_RESET: u32 = 64;
export const VIRTIO_STATUS_FAILED: u32 = 128;

// 4.1.2 PCI Device Discovery: every virtio PCI function has this vendor id.
export const VIRTIO_PCI_VENDOR: u32 = 0x1af4;

// 6 Reserved Feature Bits.
export const VIRTIO_F_EVENT_IDX: u64 = 1 << 29; // used_event / avail_event (2.7.7, 2.7.10)
export const VIRTIO_F_VERSION_1: u64 = 1 << 32;
export const VIRTIO_F_ACCESS_PLATFORM: u64 = 1 << 33;

// 4.1.4.3 / 4.1.5.1.3: MSI-X "no vector" (the config change interrupt, and every queue when we only poll).
export const VIRTIO_MSI_NO_VECTOR: u32 = 0xffff;

// Why bringing a device up failed. Named values, logged by name.
export enum VirtioError {
  None = 0,
  MissingCapability,
  CapabilityOutsideBar,
  ResetTimeout,
  FeatureVersion1Missing,
  FeaturesNotAccepted,
  QueueUnavailable,
  QueueNotifyOutsideCap,
  ConfigUnstable,
  DriverOkRefused,
  GuestCidInvalid,
}

export function virtioErrorName(error: VirtioError): string {
  switch (error) {
    case VirtioError.None:
      return "none";
    case VirtioError.MissingCapability:
      return "missing virtio capability";
    case VirtioError.CapabilityOutsideBar:
      return "capability outside its BAR";
    case VirtioError.ResetTimeout:
      return "device did not reset";
    case VirtioError.FeatureVersion1Missing:
      return "VIRTIO_F_VERSION_1 not offered";
    case VirtioError.FeaturesNotAccepted:
      return "device did not accept FEATURES_OK";
    case VirtioError.QueueUnavailable:
      return "queue unavailable";
    case VirtioError.QueueNotifyOutsideCap:
      return "queue set-up refused (notify address outside its structure, or the queue already live)";
    case VirtioError.ConfigUnstable:
      return "device config kept changing";
    case VirtioError.DriverOkRefused:
      return "device refused DRIVER_OK or needs a reset";
    case VirtioError.GuestCidInvalid:
      return "guest_cid reserved or above 32 bits";
  }
  return "unknown";
}
