/**
 * `node --require @mcp/runtime/dist/telemetry-preload.js dist/main.js`:
 * starts tracing before the service loads @grpc/grpc-js and pg, so their
 * instrumentation can patch them.
 */
import { startTelemetry } from './telemetry';

startTelemetry();
