import { createHash, timingSafeEqual } from 'node:crypto';

export type TokenRole = 'admin' | 'read';

export interface ApiToken {
  name: string;
  role: TokenRole;
  digest: Buffer;
}

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/**
 * Parses a token list: one `name:role:token` per line (role `admin` or `read`),
 * `#` comments and blank lines ignored. Throws naming the line and the rule.
 * Only digests are kept, so no token sits in memory in the clear.
 */
export function parseTokens(text: string, source: string): ApiToken[] {
  const tokens: ApiToken[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [name, role, ...rest] = line.split(':');
    const token = rest.join(':');
    const where = `${source} line ${index + 1}`;
    if (name === undefined || !/^[a-z0-9][-a-z0-9]{0,62}$/.test(name)) throw new Error(`${where}: the name must be a DNS label, as in name:role:token`);
    if (role !== 'admin' && role !== 'read') throw new Error(`${where}: the role must be admin or read, as in name:role:token`);
    if (token.length < 16) throw new Error(`${where}: the token must be at least 16 characters`);
    tokens.push({ name, role, digest: digest(token) });
  });
  if (tokens.length === 0) throw new Error(`${source}: no tokens (one name:role:token per line)`);
  return tokens;
}

/** Finds the token a request presents, comparing digests in constant time against every token. */
export function authenticate(tokens: readonly ApiToken[], authorization: string | undefined): ApiToken | undefined {
  const match = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (match?.[1] === undefined) return undefined;
  return findToken(tokens, match[1]);
}

/**
 * Like `authenticate`, and also takes HTTP Basic credentials (what a browser
 * sends): the user is the token's name and the password the token itself.
 */
export function authenticateBrowser(tokens: readonly ApiToken[], authorization: string | undefined): ApiToken | undefined {
  const basic = authorization === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (basic?.[1] === undefined) return authenticate(tokens, authorization);
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  const found = findToken(tokens, decoded.slice(colon + 1));
  return found?.name === decoded.slice(0, colon) ? found : undefined;
}

function findToken(tokens: readonly ApiToken[], presentedToken: string): ApiToken | undefined {
  const presented = digest(presentedToken);
  let found: ApiToken | undefined;
  // No early exit: the time taken does not say which token (or how much of one) matched.
  for (const token of tokens) {
    if (timingSafeEqual(presented, token.digest) && found === undefined) found = token;
  }
  return found;
}
