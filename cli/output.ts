/** Prints rows as aligned columns under a header; the last column is not padded. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows])
    process.stdout.write(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
}

/** Polls `read` every 200 ms until `ended`, then prints its state (`cancel --wait`). */
export async function printStateWhenEnded<T extends { state: string }>(
  read: () => Promise<T>,
  ended: (value: T) => boolean,
): Promise<void> {
  for (;;) {
    const value = await read();
    if (ended(value)) {
      process.stdout.write(`${value.state}\n`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
