// A reader and rewriter for data-driven test files, in the format of
// etcd-io/raft's testdata:
//
//   # comments and blank lines between blocks
//   command arg key=value
//   ----
//   expected output (no blank lines inside)
//   <blank line>
//
// Expected output is compared exactly; with MAST_REWRITE=1 the file is
// rewritten with the actual output instead.

export interface Block {
  /** 1-based line of the command. */
  readonly line: number;
  readonly command: string;
  readonly name: string;
  readonly positional: readonly string[];
  readonly options: ReadonlyMap<string, string>;
  readonly expected: string;
  /** Lines between the previous block and this one (blank lines, comments), kept on rewrite. */
  readonly preamble: readonly string[];
}

export interface ParsedFile {
  readonly blocks: readonly Block[];
  readonly trailer: readonly string[];
}

export function parseCommand(command: string): { name: string; positional: string[]; options: Map<string, string> } {
  const words = command.trim().split(/\s+/);
  const name = words.shift() ?? '';
  const positional: string[] = [];
  const options = new Map<string, string>();
  for (const word of words) {
    const equals = word.indexOf('=');
    if (equals > 0) options.set(word.slice(0, equals), word.slice(equals + 1));
    else positional.push(word);
  }
  return { name, positional, options };
}

export function parseFile(text: string, path: string): ParsedFile {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let preamble: string[] = [];
  let index = 0;
  while (index < lines.length) {
    const line = lines[index]!;
    if (line.trim() === '' || line.startsWith('#')) {
      preamble.push(line);
      index++;
      continue;
    }
    const commandLine = index + 1;
    const command = line;
    index++;
    if (lines[index] !== '----') throw new Error(`${path}:${commandLine}: expected "----" after the command "${command}"`);
    index++;
    const expected: string[] = [];
    while (index < lines.length && lines[index] !== '') expected.push(lines[index++]!);
    const { name, positional, options } = parseCommand(command);
    blocks.push({ line: commandLine, command, name, positional, options, expected: expected.join('\n'), preamble });
    preamble = [];
  }
  return { blocks, trailer: preamble };
}

export function renderFile(parsed: ParsedFile, outputs: readonly string[]): string {
  const lines: string[] = [];
  parsed.blocks.forEach((block, position) => {
    lines.push(...block.preamble, block.command, '----', ...(outputs[position] ?? '').split('\n'));
  });
  lines.push(...parsed.trailer);
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n') + '\n';
}
