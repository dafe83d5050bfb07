// Merging a module's active data segments. asc emits one segment per static object (about 740
// for the firmware), and wasm2c turns each into its own bounds check and copy in one straight-line
// function: 33 KiB of code that runs once per boot. Under emulation every first-run instruction
// is translated before it runs, so that function alone cost milliseconds of each boot. Segments
// closer than `maxGap` bytes become one, the gap filled with the zeros it held anyway.

export interface DataSegment {
  offset: number;
  data: Uint8Array;
}

// Joins segments whose gap is at most maxGap. Input in any order; the result is sorted by offset.
// Overlapping segments are refused: their order would decide which bytes win.
export function mergeDataSegments(segments: DataSegment[], maxGap: number): DataSegment[] {
  const sorted = [...segments].sort((a, b) => a.offset - b.offset);
  const runs: DataSegment[][] = [];
  let end = -1;
  for (const s of sorted) {
    if (s.offset < end) throw new Error(`data segments overlap at offset ${s.offset}`);
    if (runs.length > 0 && s.offset - end <= maxGap) runs[runs.length - 1].push(s);
    else runs.push([s]);
    end = s.offset + s.data.byteLength;
  }
  return runs.map((run) => {
    const start = run[0].offset;
    const last = run[run.length - 1];
    const data = new Uint8Array(last.offset + last.data.byteLength - start);
    for (const s of run) data.set(s.data, s.offset - start);
    return { offset: start, data };
  });
}
