import { CoreSchema1735689600000 } from './1735689600000-core-schema';
import { PartitionManagement1735689600001 } from './1735689600001-partition-management';
import { ConnectionLogging1735689600002 } from './1735689600002-connection-logging';
import { AuditAndSecurity1735689600003 } from './1735689600003-audit-and-security';
import { Security1735689600004 } from './1735689600004-security';
import { StatusSync1735689600005 } from './1735689600005-status-sync';
import { AuditIntegrity1735689600006 } from './1735689600006-audit-integrity';
import { Retention1735689600007 } from './1735689600007-retention';
import { SecurityEventIndicators1735689600008 } from './1735689600008-security-event-indicators';
import { ConcurrentSessionLimit1735689600009 } from './1735689600009-concurrent-session-limit';
import { AuditFieldErasure1735689600010 } from './1735689600010-audit-field-erasure';

/** Every migration, oldest first. New migrations are appended here and nowhere else. */
export const migrations = [
  CoreSchema1735689600000,
  PartitionManagement1735689600001,
  ConnectionLogging1735689600002,
  AuditAndSecurity1735689600003,
  Security1735689600004,
  StatusSync1735689600005,
  AuditIntegrity1735689600006,
  Retention1735689600007,
  SecurityEventIndicators1735689600008,
  ConcurrentSessionLimit1735689600009,
  AuditFieldErasure1735689600010,
];
