/**
 * The Dockerfile and .dockerignore reading behind `npm run check:image`
 * (image/check-image.js): it replays the Dockerfile's own instructions on the
 * context Docker would send, so both must follow Docker's rules.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerignoreMatcher, parseDockerfile, parseEnv, parseExecForm, parseInstructions, splitFlags } from '../image/dockerfile';
import { REPO_ROOT } from './render';

describe('.dockerignore matching (Docker pattern semantics)', () => {
  it('`**` spans any number of directories, none included', () => {
    const { excludes } = dockerignoreMatcher('**/node_modules\n');
    expect(excludes('node_modules')).toBe(true);
    expect(excludes('packages/db/node_modules/pg/index.js')).toBe(true);
    expect(excludes('packages/db/node_modules_notes.md')).toBe(false);
  });

  it('`*` stays within one segment, and patterns are anchored at the context root', () => {
    const { excludes } = dockerignoreMatcher('*.log\n/deploy/k8s/\n');
    expect(excludes('npm.log')).toBe(true);
    expect(excludes('services/audit/npm.log')).toBe(false);
    expect(excludes('deploy/k8s/base/audit.yaml')).toBe(true);
    expect(excludes('deploy/k8s2/audit.yaml')).toBe(false);
  });

  it('a directory pattern excludes everything below it; `!` re-includes; the last match wins', () => {
    const { excludes, hasExceptions } = dockerignoreMatcher('# comment\ndocs\n!docs/operations.md\ndocs/operations.md\n!docs/README.md\n');
    expect(hasExceptions).toBe(true);
    expect(excludes('docs/metrics.md')).toBe(true);
    expect(excludes('docs/operations.md')).toBe(true);
    expect(excludes('docs/README.md')).toBe(false);
  });

  it("keeps the repository's host build and install output out of the context, and the sources in", () => {
    const { excludes } = dockerignoreMatcher(fs.readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8'));
    for (const kept of ['package.json', 'package-lock.json', 'config/mcp.json', 'proto/buf.yaml', 'packages/runtime/src/index.ts']) {
      expect(excludes(kept), kept).toBe(false);
    }
    for (const dropped of ['node_modules/pg/package.json', 'packages/runtime/dist/index.js', 'packages/proto/src/gen/index.ts', '.git/HEAD']) {
      expect(excludes(dropped), dropped).toBe(true);
    }
  });
});

describe('Dockerfile reading', () => {
  it('joins continuation lines as Docker does, dropping comment and blank lines inside them', () => {
    const instructions = parseInstructions(
      ['# syntax=docker/dockerfile:1', 'FROM node:22 AS build', 'RUN set -eu; \\', '    # why', '', '    echo one; \\', '    echo two', 'cmd ["a", "b"]'].join('\n'),
    );
    expect(instructions).toEqual([
      { keyword: 'FROM', args: 'node:22 AS build', line: 2 },
      { keyword: 'RUN', args: 'set -eu;     echo one;     echo two', line: 3 },
      { keyword: 'CMD', args: '["a", "b"]', line: 8 },
    ]);
    expect(parseExecForm(instructions[2])).toEqual(['a', 'b']);
    expect(() => parseExecForm({ keyword: 'CMD', args: 'node main.js', line: 1 })).toThrow(/exec \(JSON array\) form/);
  });

  it('reads ENV pairs (quoted or not), RUN/COPY flags, and global ARGs in FROM', () => {
    expect(parseEnv('CI=true A="two words" B=x')).toEqual({ CI: 'true', A: 'two words', B: 'x' });
    expect(parseEnv('LEGACY some value')).toEqual({ LEGACY: 'some value' });
    expect(splitFlags('--mount=type=cache,target=/root/.npm cp a b')).toEqual({ flags: { mount: 'type=cache,target=/root/.npm' }, rest: 'cp a b' });
    const { globalArgs, stages } = parseDockerfile('ARG V=22\nFROM node:${V}-slim AS build\nRUN true\nFROM base:$V\nUSER 1:1\n');
    expect(globalArgs).toEqual({ V: '22' });
    expect(stages.map((s) => [s.image, s.name, s.instructions.map((i) => i.keyword)])).toEqual([
      ['node:22-slim', 'build', ['RUN']],
      ['base:22', '1', ['USER']],
    ]);
  });
});
