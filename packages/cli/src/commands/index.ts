import { adminKeyCreate, adminKeyList, adminKeyRevoke, adminRoleCreate, adminRoleDelete, adminRoleGrant, adminRoleRevoke, adminUserCreate } from './admin';
import type { Command } from './common';
import { demo } from './demo';
import { eventsList, eventsRecord, eventsTail } from './events';
import { health } from './health';
import { agentUpsert, connectionUpsert } from './registry';
import { activity, agentLogs } from './reports';

export type { Command } from './common';

/** Every mcpctl command, in the order `mcpctl --help` lists them. */
export const COMMANDS: Command[] = [
  demo,
  agentUpsert,
  connectionUpsert,
  eventsRecord,
  eventsList,
  eventsTail,
  agentLogs,
  activity,
  health,
  adminUserCreate,
  adminRoleCreate,
  adminRoleDelete,
  adminRoleGrant,
  adminRoleRevoke,
  adminKeyCreate,
  adminKeyRevoke,
  adminKeyList,
];
