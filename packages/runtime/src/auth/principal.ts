/**
 * Every permission an RPC can require. Roles (table `roles`) grant lists of
 * these; '*' grants all of them.
 */
export const PERMISSIONS = [
  'connection_logs:read',
  'connection_logs:write',
  'registry:write',
  'status:read',
  'status:write',
  'audit:read',
  'audit:read_own',
  'audit:write',
  'audit:export',
  'audit:verify',
  'audit:erase',
  'security_events:read',
  'security_events:write',
  'security_events:manage',
  'retention:read',
  'retention:run',
  'retention:manage_policies',
  'legal_hold:manage',
  'identity:manage',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

/** Who is calling, as established by the call guard. */
export interface Principal {
  /** users.id of the caller (a person or a service account). */
  userId: string;
  /** The API key used, when the caller authenticated with one. */
  apiKeyId: string | undefined;
  /** How the caller proved who it is. */
  via: 'api_key' | 'mtls' | 'unauthenticated_dev';
  /** Effective roles, inherited ones included. */
  roles: readonly string[];
  permissions: ReadonlySet<string>;
  /** Admins read everything; everyone else reads through row-level security. */
  isAdmin: boolean;
}

export function hasPermission(principal: Principal, permission: Permission): boolean {
  return principal.permissions.has('*') || principal.permissions.has(permission);
}
