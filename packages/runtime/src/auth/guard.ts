import type { DataSource } from 'typeorm';
import type { CallContext, CallGuard } from '../calls';
import type { PlatformConfig } from '../config';
import { PermissionDeniedError, UnauthenticatedError, UnavailableError } from '../errors';
import type { Logger } from '../logger';
import type { NotificationHub } from '../notifications';
import { hashesEqual, presentedKey } from './api-keys';
import { IdentityStore, type KeyRecord } from './identity-store';
import { hasPermission, type Permission, type Principal } from './principal';
import { RateLimiter } from './rate-limiter';

/** NOTIFY channel the auth tables' triggers signal on (migration Security1735689600004). */
export const AUTH_CHANGES_CHANNEL = 'mcp_auth_changes';
/** last_used_at is informational: write it at most this often per key. */
const TOUCH_INTERVAL_MS = 60_000;

interface CachedIdentity {
  key: KeyRecord;
  principal: Principal;
  loadedAt: number;
}

export interface PlatformGuardOptions {
  dataSource: DataSource;
  hub: NotificationHub;
  config: PlatformConfig;
  logger: Logger;
  /** Recorded as the source of security events. */
  serviceName: string;
}

/**
 * The call guard of every service: API key (or client certificate) ->
 * principal with its effective roles, then address lockout and rate limit,
 * then the RPC's permission. Failures are written to security_events; repeated
 * failures lock the address or the key for the configured time.
 */
export class PlatformGuard implements CallGuard {
  private readonly store: IdentityStore;
  private readonly limiter: RateLimiter;
  private readonly cache = new Map<string, CachedIdentity>();
  private readonly touched = new Map<string, number>();

  constructor(private readonly options: PlatformGuardOptions) {
    this.store = new IdentityStore(options.dataSource);
    const { rate_limiting } = options.config.security.network_security;
    this.limiter = new RateLimiter(options.dataSource, {
      requests: rate_limiting.requests_per_minute,
      windowSeconds: 60,
      blockOnExceed: rate_limiting.block_on_exceed,
    });
    options.hub.addChannel(AUTH_CHANGES_CHANNEL);
    options.hub.subscribe((channel) => {
      if (channel !== AUTH_CHANGES_CHANNEL) return;
      this.cache.clear();
      this.limiter.invalidate();
    });
  }

  async admit(ctx: Omit<CallContext, 'principal'>, permission: Permission): Promise<Principal> {
    // Started while the database was down: nobody can be authenticated yet, and that is retryable.
    if (!this.options.dataSource.isInitialized) throw new UnavailableError('database not connected yet');
    const address = peerAddress(ctx.peer);
    const principal = await this.authenticate(ctx, address);
    await this.limiter.admit(principal.userId, ctx.method, address);
    if (!hasPermission(principal, permission)) {
      await this.store.recordPermissionDenied({
        userId: principal.userId,
        address,
        method: ctx.method,
        permission,
        service: this.options.serviceName,
      });
      throw new PermissionDeniedError(`${ctx.method} requires the ${permission} permission`);
    }
    return principal;
  }

  private async authenticate(ctx: Omit<CallContext, 'principal'>, address: string | null): Promise<Principal> {
    const presented = presentedKey(ctx.metadata);
    if (presented.kind === 'missing' && ctx.clientCertificateName) {
      return this.principalForCertificate(ctx.clientCertificateName, ctx.method, address);
    }
    if (presented.kind !== 'key') {
      const reason = presented.kind === 'missing' ? 'no API key (authorization: Bearer mcp_…)' : 'malformed API key';
      throw await this.failure(reason, ctx.method, address, undefined);
    }
    const identity = await this.identity(presented.prefix);
    const key = identity?.key;
    if (!identity || !key || !hashesEqual(key.keyHash, presented.hash)) {
      throw await this.failure('unknown API key', ctx.method, address, presented.prefix);
    }
    const now = Date.now();
    if (key.revokedAt) throw await this.failure('API key revoked', ctx.method, address, presented.prefix);
    if (key.expiresAt && key.expiresAt.getTime() <= now) throw await this.failure('API key expired', ctx.method, address, presented.prefix);
    if (key.lockedUntil && key.lockedUntil.getTime() > now) {
      throw new UnauthenticatedError(`API key locked after repeated failures until ${key.lockedUntil.toISOString()}`);
    }
    if (!key.userUsable) throw await this.failure('user disabled', ctx.method, address, presented.prefix);
    if (key.userLockedUntil && key.userLockedUntil.getTime() > now) {
      throw new UnauthenticatedError(`account locked until ${key.userLockedUntil.toISOString()}`);
    }
    if (now - (this.touched.get(key.keyId) ?? 0) > TOUCH_INTERVAL_MS) {
      this.touched.set(key.keyId, now);
      await this.store.touchKey(key.keyId);
    }
    return identity.principal;
  }

  private async identity(prefix: string): Promise<CachedIdentity | undefined> {
    const ttl = this.options.config.security.authentication.identity_cache_ttl_ms;
    const cached = this.cache.get(prefix);
    if (cached && Date.now() - cached.loadedAt < ttl) return cached;
    const key = await this.store.keyByPrefix(prefix);
    if (!key) return undefined;
    const grants = await this.store.grants(key.userId);
    const identity: CachedIdentity = {
      key,
      loadedAt: Date.now(),
      principal: {
        userId: key.userId,
        apiKeyId: key.keyId,
        via: 'api_key',
        roles: grants.roles,
        permissions: new Set(grants.permissions),
        isAdmin: grants.roles.includes('admin'),
      },
    };
    this.cache.set(prefix, identity);
    return identity;
  }

  private async principalForCertificate(name: string, method: string, address: string | null): Promise<Principal> {
    const user = await this.store.userByName(name);
    if (!user || !user.userUsable) throw await this.failure(`client certificate names no usable account (${name})`, method, address, undefined);
    const grants = await this.store.grants(user.userId);
    return {
      userId: user.userId,
      apiKeyId: undefined,
      via: 'mtls',
      roles: grants.roles,
      permissions: new Set(grants.permissions),
      isAdmin: grants.roles.includes('admin'),
    };
  }

  /** Records the failure, locks the address or key past the threshold, and returns the error to throw. */
  private async failure(reason: string, method: string, address: string | null, keyPrefix: string | undefined): Promise<UnauthenticatedError> {
    const auth = this.options.config.security.authentication;
    try {
      const counts = await this.store.recordAuthFailure({
        address,
        keyPrefix,
        reason,
        method,
        service: this.options.serviceName,
        windowSeconds: auth.failure_window_seconds,
      });
      if (address && counts.fromAddress >= auth.max_failed_attempts) {
        await this.store.lockAddress(address, auth.lockout_seconds, auth.max_failed_attempts, auth.failure_window_seconds, this.options.serviceName);
        // The limiter caches lockouts: this replica applies its own at once, not at the next NOTIFY or refresh.
        this.limiter.invalidate();
      }
      if (keyPrefix && counts.withKey >= auth.max_failed_attempts) {
        await this.store.lockKey(keyPrefix, auth.lockout_seconds, auth.max_failed_attempts, this.options.serviceName);
      }
    } catch (err) {
      // The caller still gets UNAUTHENTICATED; the bookkeeping failure is ours.
      this.options.logger.error({ err }, 'could not record an authentication failure');
    }
    return new UnauthenticatedError(reason);
  }
}

/** For development only (require_authentication: false): every call is the system account, with every permission. */
export class UnauthenticatedDevGuard implements CallGuard {
  async admit(): Promise<Principal> {
    return {
      userId: SYSTEM_USER_ID,
      apiKeyId: undefined,
      via: 'unauthenticated_dev',
      roles: ['admin'],
      permissions: new Set(['*']),
      isAdmin: true,
    };
  }
}

/** users.id of the platform's own account (created by migration Security1735689600004). */
export const SYSTEM_USER_ID = '00000000-0000-0000-0000-000000000001';

/** grpc-js peers look like "ipv4:127.0.0.1:5000", "127.0.0.1:5000" or "[::1]:5000". */
export function peerAddress(peer: string): string | null {
  const bare = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(bare);
  if (v6) return v6[1];
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(bare);
  return v4 ? v4[1] : null;
}
