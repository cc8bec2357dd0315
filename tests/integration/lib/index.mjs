// The integration-test harness, in one import.
export * from './env.mjs';
export * from './wait.mjs';
export * from './ports.mjs';
export * from './http.mjs';
export * from './jwt.mjs';
export * from './resp.mjs';
export * from './redis.mjs';
export * from './gateway.mjs';
export * from './client.mjs';
export * from './scope.mjs';
export * from './api.mjs';
export * from './upgrade.mjs';
