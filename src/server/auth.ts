import type { AuthChecker } from 'type-graphql';

import type { Context, Role } from '../../resolvers/context';
import { ForbiddenError, UnauthenticatedError } from '../errors';
import type { AdminKeyVerifier } from './admin-key';

/** `Authorization: Bearer <key>` → `<key>`; anything else → `undefined`. */
export function bearerFrom(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * type-graphql's `@Authorized(Role.ADMIN)` check. No credential → `UNAUTHENTICATED`; a
 * credential that is not the admin key → `FORBIDDEN`.
 */
export function createAuthChecker(admin: AdminKeyVerifier): AuthChecker<Context, Role> {
  return ({ context }) => {
    if (context.bearer === undefined) throw new UnauthenticatedError();
    if (!admin.matches(context.bearer)) throw new ForbiddenError();
    return true;
  };
}
