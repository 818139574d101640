// Static bearer tokens in Kubernetes' --token-auth-file format: one CSV
// record per line, `token,user,uid[,"group1,group2"]`. Blank lines and lines
// starting with # are skipped. Errors name the file and line, never the token.

export interface TokenUser {
  readonly name: string;
  readonly uid: string;
  readonly groups: string[];
}

export interface TokenEntry {
  readonly token: string;
  readonly user: TokenUser;
}

export class TokenFileError extends Error {
  override readonly name = 'TokenFileError';
}

/** One CSV record: fields split on commas, a field may be "quoted" ("" is a quote inside one). */
function splitRecord(line: string): string[] | string {
  const fields: string[] = [];
  let index = 0;
  for (;;) {
    while (line[index] === ' ' || line[index] === '\t') index++;
    let field = '';
    if (line[index] === '"') {
      index++;
      for (;;) {
        if (index >= line.length) return 'unterminated quoted field';
        if (line[index] === '"') {
          if (line[index + 1] !== '"') break;
          index++;
        }
        field += line[index];
        index++;
      }
      index++;
      while (line[index] === ' ' || line[index] === '\t') index++;
      if (index < line.length && line[index] !== ',') return 'unexpected text after a quoted field';
    } else {
      const end = line.indexOf(',', index);
      field = (end < 0 ? line.slice(index) : line.slice(index, end)).trim();
      if (field.includes('"')) return 'a quote inside an unquoted field';
      index = end < 0 ? line.length : end;
    }
    fields.push(field);
    if (index >= line.length) return fields;
    index++; // the comma
  }
}

function splitGroups(field: string | undefined): string[] {
  if (field === undefined) return [];
  return field
    .split(',')
    .map((group) => group.trim())
    .filter((group) => group !== '');
}

/** Parses a token file; `source` (usually the file name) prefixes every error. */
export function parseTokenFile(text: string, source: string): Map<string, TokenUser> {
  const users = new Map<string, TokenUser>();
  const firstLine = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, index) => {
    const lineNumber = index + 1;
    const fail = (message: string): never => {
      throw new TokenFileError(`${source}:${lineNumber}: ${message}`);
    };
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const fields = splitRecord(trimmed);
    if (typeof fields === 'string') return fail(fields);
    if (fields.length < 3) return fail(`expected at least 3 fields token,user,uid (found ${fields.length})`);
    if (fields.length > 4) return fail(`expected at most 4 fields token,user,uid,groups (found ${fields.length}); quote the groups: "group1,group2"`);
    const [token, name, uid, groups] = fields as [string, string, string, string | undefined];
    if (token === '') return fail('empty token');
    if (name === '') return fail('empty user name');
    const previous = firstLine.get(token);
    if (previous !== undefined) return fail(`duplicate token (first on line ${previous})`);
    firstLine.set(token, lineNumber);
    users.set(token, { name, uid, groups: splitGroups(groups) });
  });
  return users;
}

function csvField(value: string): string {
  return /[",\s]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The file text for `entries`: the groups field is always quoted, and left out when there are none. */
export function formatTokenFile(entries: readonly TokenEntry[]): string {
  return entries
    .map(({ token, user }) => {
      const fields = [csvField(token), csvField(user.name), csvField(user.uid)];
      if (user.groups.length > 0) fields.push(`"${user.groups.join(',').replace(/"/g, '""')}"`);
      return `${fields.join(',')}\n`;
    })
    .join('');
}
