'use strict';
/**
 * Reads a Dockerfile and a .dockerignore the way Docker does, so that
 * check-image.js can replay the Dockerfile's own instructions instead of a
 * second copy of them. Only what ./Dockerfile uses is supported; anything else
 * is reported, never skipped.
 */

/**
 * Instructions in order, with Docker's line handling: `\` at the end of a line
 * continues it (the backslash and newline are removed, nothing else), comment
 * lines are dropped even inside a continuation, and so are blank lines.
 */
function parseInstructions(text) {
  const instructions = [];
  let pending = null;
  let startLine = 0;
  const finish = () => {
    const match = /^(\S+)\s*([\s\S]*)$/.exec(pending);
    instructions.push({ keyword: match[1].toUpperCase(), args: match[2].trim(), line: startLine });
    pending = null;
  };
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    const trimmed = line.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const continues = /\\[ \t]*$/.test(line);
    const body = continues ? line.replace(/\\[ \t]*$/, '') : line;
    if (pending === null) {
      pending = body.trimStart();
      startLine = index + 1;
    } else {
      pending += body;
    }
    if (!continues) finish();
  });
  if (pending !== null) finish();
  return instructions;
}

/** Leading `--name=value` flags of RUN/COPY, and the rest of the arguments. */
function splitFlags(args) {
  const flags = {};
  let rest = args;
  for (let match; (match = /^--([a-z-]+)=(\S+)\s*/.exec(rest)); rest = rest.slice(match[0].length)) {
    flags[match[1]] = match[2];
  }
  return { flags, rest };
}

/** `ENV a=1 b=2` (values may be double-quoted) or the legacy `ENV a 1`. */
function parseEnv(args) {
  const tokens = args.match(/(?:[^\s"]+|"(?:[^"\\]|\\.)*")+/g) ?? [];
  if (tokens.length > 0 && !tokens[0].includes('=')) return { [tokens[0]]: args.slice(tokens[0].length).trim() };
  const env = {};
  for (const token of tokens) {
    const eq = token.indexOf('=');
    env[token.slice(0, eq)] = token.slice(eq + 1).replace(/"((?:[^"\\]|\\.)*)"/g, (_, inner) => inner.replace(/\\(.)/g, '$1'));
  }
  return env;
}

/** ENTRYPOINT/CMD: the exec (JSON) form only; the runtime image has no shell for the other. */
function parseExecForm(instruction) {
  const parsed = instruction.args.startsWith('[') ? JSON.parse(instruction.args) : null;
  if (!Array.isArray(parsed) || !parsed.every((part) => typeof part === 'string')) {
    throw new Error(`Dockerfile line ${instruction.line}: ${instruction.keyword} must use the exec (JSON array) form`);
  }
  return parsed;
}

/**
 * Global ARGs (those before the first FROM, with their defaults) and the
 * stages, each with its base image (ARGs substituted) and instructions.
 */
function parseDockerfile(text) {
  const globalArgs = {};
  const stages = [];
  for (const instruction of parseInstructions(text)) {
    if (instruction.keyword === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match) throw new Error(`Dockerfile line ${instruction.line}: cannot read FROM ${instruction.args}`);
      const image = match[1].replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced, bare) => globalArgs[braced ?? bare] ?? '');
      stages.push({ image, name: match[2] ?? String(stages.length), instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new Error(`Dockerfile line ${instruction.line}: ${instruction.keyword} before FROM`);
      const [name, value = ''] = instruction.args.split('=');
      globalArgs[name] = value;
    } else {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

/**
 * .dockerignore as Docker's pattern matcher reads it: patterns are cleaned
 * paths relative to the context root; `*` and `?` stay within one path
 * segment, `**` spans any number of them (none included); a pattern that
 * matches a directory excludes everything below it; `!` re-includes; the last
 * matching pattern wins.
 */
function dockerignoreMatcher(text) {
  const patterns = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const exception = line.startsWith('!');
      const cleaned = (exception ? line.slice(1).trim() : line).split('/').filter((part) => part !== '' && part !== '.').join('/');
      return { exception, regex: patternRegex(cleaned) };
    });
  const matches = (regex, relPath) => {
    if (regex.test(relPath)) return true;
    const parts = relPath.split('/');
    for (let i = 1; i < parts.length; i++) if (regex.test(parts.slice(0, i).join('/'))) return true;
    return false;
  };
  return {
    hasExceptions: patterns.some((pattern) => pattern.exception),
    /** Whether a path (relative to the context root, `/`-separated) stays out of the build context. */
    excludes(relPath) {
      let excluded = false;
      for (const { exception, regex } of patterns) {
        if (exception !== excluded) continue;
        if (matches(regex, relPath)) excluded = !exception;
      }
      return excluded;
    },
  };
}

function patternRegex(pattern) {
  let source = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*' && pattern[i + 1] === '*') {
      i += pattern[i + 2] === '/' ? 2 : 1;
      source += i === pattern.length - 1 ? '.*' : '(?:.*/)?';
    } else if (ch === '*') {
      source += '[^/]*';
    } else if (ch === '?') {
      source += '[^/]';
    } else if (ch === '\\' && i + 1 < pattern.length) {
      source += `\\${pattern[++i]}`;
    } else {
      source += /[.+^${}()|]/.test(ch) ? `\\${ch}` : ch;
    }
  }
  return new RegExp(`${source}$`);
}

module.exports = { parseInstructions, parseDockerfile, splitFlags, parseEnv, parseExecForm, dockerignoreMatcher };
