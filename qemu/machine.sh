# Sourced by the run scripts: the two machine shapes the firmware boots in.
#   q35      build/firmware.bin as pflash, virtio devices on PCI (vhost-vsock-pci, ...)
#   microvm  build/firmware-pvh.elf as a PVH kernel (-kernel), virtio devices on MMIO
#            (vhost-vsock-device, ...), modern (version 2) transports; ACPI off, so that QEMU
#            names the devices on the command line (virtio_mmio.device=512@0xfeb00e00:12).
# machine_shape <q35|microvm> <image> [memory-backend id] sets MACHINE_ARGS (QEMU arguments) and
# VIRTIO_SUFFIX (pci or device, for -device vhost-vsock-$VIRTIO_SUFFIX); exits 2 on another shape.
machine_default_image() {
  case "$1" in
    microvm) echo build/firmware-pvh.elf ;;
    *) echo build/firmware.bin ;;
  esac
}

machine_shape() {
  local shape=$1 image=$2 backend=${3:-}
  local memory=${backend:+,memory-backend=$backend}
  case "$shape" in
    q35)
      MACHINE_ARGS=(-machine "q35$memory" -drive "if=pflash,format=raw,unit=0,file=$image,readonly=on")
      VIRTIO_SUFFIX=pci ;;
    microvm)
      MACHINE_ARGS=(-machine "microvm,acpi=off,pit=on,pic=off,rtc=off,isa-serial=off$memory" -kernel "$image"
        -global virtio-mmio.force-legacy=false)
      VIRTIO_SUFFIX=device ;;
    *) echo "machine: --machine takes q35 or microvm (not '$shape')" >&2; exit 2 ;;
  esac
}
