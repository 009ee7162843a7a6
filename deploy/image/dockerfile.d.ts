export interface Instruction {
  /** Upper-cased, e.g. RUN. */
  keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  args: string;
  /** Line number where the instruction starts. */
  line: number;
}

export interface Stage {
  image: string;
  name: string;
  instructions: Instruction[];
}

export function parseInstructions(text: string): Instruction[];
export function parseDockerfile(text: string): { globalArgs: Record<string, string>; stages: Stage[] };
export function splitFlags(args: string): { flags: Record<string, string>; rest: string };
export function parseEnv(args: string): Record<string, string>;
export function parseExecForm(instruction: Instruction): string[];
export function dockerignoreMatcher(text: string): { hasExceptions: boolean; excludes(relPath: string): boolean };
