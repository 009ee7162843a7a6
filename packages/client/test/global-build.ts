/**
 * vitest globalSetup: compiles the package (dist/) and the examples once,
 * before any test file runs, for the tests that start child processes
 * running the compiled code as an application would.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export default function setup(): void {
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: path.resolve(__dirname, '..'), stdio: 'inherit' });
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: path.resolve(__dirname, '../../../examples'), stdio: 'inherit' });
}
