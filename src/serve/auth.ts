import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Bearer-token check for KB writes, in constant time: both sides are hashed to 32 bytes first, so
 * neither the comparison nor an early length mismatch tells an attacker how much of a guess matched.
 */
export function tokenMatches(expected: string, authorization: string | undefined): boolean {
  if (!authorization) return false;
  const m = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  if (!m) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(m[1]).digest();
  return timingSafeEqual(a, b);
}
