// Build-time constants, passed by the Makefile as `asc --use NAME=value` (see asconfig.json and
// the Makefile's ASC_DEFINES). They fold at compile time, so a disabled feature costs no code.
declare const LOG_LEVEL: i32; // 0 error, 1 warn, 2 info, 3 debug
declare const SELFTEST: i32; // 0 none, 1 CPU exception, 2 wasm trap, 3 crash ports while serving, 4 trap in the report (crash-report tests)
declare const MAX_CONNECTIONS: i32; // connection table size
declare const QUEUE_SIZE_MAX: i32; // cap on each virtqueue's size (the device's maximum may be lower)
declare const TRACE: i32; // 1: log every vsock header sent and received
declare const TEST_PEER: i32; // 1: the test-peer service on port 1239 (apps/test-peer), 0: left out
declare const BUILD_ID: i32; // a build stamp shown in the banner
