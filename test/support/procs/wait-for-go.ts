// The start signal of the test processes: several of them connect, report ready, and begin
// together when the test writes "go" to each one's stdin.
import { createInterface } from 'node:readline';

export async function waitForGo(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === 'go') break;
  process.stdin.destroy(); // a paused stdin pipe would keep the process alive
}
