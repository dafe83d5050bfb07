// The vsock function's queue interrupts as the idle halt sees them: a used entry written while the
// driver asks for interrupts on that queue (VRING_AVAIL_F_NO_INTERRUPT clear) and the queue has an
// MSI-X vector raises an interrupt, which stays pending until a halt takes it (a real CPU keeps
// it in the local APIC until `sti; hlt`). The machine samples the rings at every import call,
// so an entry is judged by the flags of the moment it appeared.
import { VIRTIO_MSI_NO_VECTOR, VirtioPciFunction } from "./virtio-pci";
import { SimVsockDevice } from "../../tools/vsock-model/vsock-device";

const VRING_AVAIL_F_NO_INTERRUPT = 1;

export class QueueInterrupts {
  private readonly seenUsedIdx: number[] = [];
  private pending = false;
  /** Interrupts raised so far. */
  raised = 0;

  constructor(
    private readonly fn: VirtioPciFunction,
    private readonly device: SimVsockDevice,
  ) {}

  /** Looks for used entries written since the last look; true when one raised an interrupt. */
  sample(): boolean {
    let raised = false;
    this.device.queues.forEach((q, i) => {
      if (!q || q.usedIdx === this.seenUsedIdx[i]) return;
      this.seenUsedIdx[i] = q.usedIdx;
      const routed = this.fn.queues[i]?.msixVector !== VIRTIO_MSI_NO_VECTOR;
      if (routed && (q.availFlags() & VRING_AVAIL_F_NO_INTERRUPT) === 0) raised = true;
    });
    if (raised) {
      this.pending = true;
      this.raised++;
    }
    return raised;
  }

  /** Takes the pending interrupt (a halt ends on it); false when there is none. */
  take(): boolean {
    this.sample();
    const pending = this.pending;
    this.pending = false;
    return pending;
  }
}
