/**
 * Ordinary calls timed from a client process of its own (bystander-client.cjs):
 * what another client of the services sees, whatever the test's own process
 * is busy with (e.g. tearing down thousands of streams it opened).
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface BystanderCall {
  name: string;
  address: string;
  path: string;
  request: Buffer;
}

export interface TimedCall {
  name: string;
  code: grpc.status;
  details: string;
  ms: number;
}

export class BystanderClient {
  private readonly answers: Array<(line: string) => void> = [];
  private stderr = '';

  private constructor(private readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => this.answers.shift()?.(line));
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  static start(token: string): BystanderClient {
    const child = spawn(process.execPath, [path.join(__dirname, 'bystander-client.cjs'), token], { stdio: ['pipe', 'pipe', 'pipe'] });
    return new BystanderClient(child);
  }

  /** Makes the calls all at once from the bystander process; each one's outcome and time. */
  measure(calls: BystanderCall[]): Promise<TimedCall[]> {
    return new Promise((resolve, reject) => {
      const exited = () => reject(new Error(`the bystander client exited: ${this.stderr}`));
      this.child.once('exit', exited);
      this.answers.push((line) => {
        this.child.off('exit', exited);
        resolve(JSON.parse(line) as TimedCall[]);
      });
      this.child.stdin!.write(`${JSON.stringify(calls.map((c) => ({ name: c.name, address: c.address, path: c.path, hex: c.request.toString('hex') })))}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    await exited;
  }
}
