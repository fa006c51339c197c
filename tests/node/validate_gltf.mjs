// Validate a glTF/GLB with the Khronos glTF validator (npm gltf-validator, installed by
// `make node-tools` into .cache/node): node validate_gltf.mjs NODE_MODULES_DIR FILE -> JSON report
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.argv[2] + "/");
const validator = require("gltf-validator");
const data = new Uint8Array(readFileSync(process.argv[3]));
const report = await validator.validateBytes(data, { uri: process.argv[3], maxIssues: 1000 });
process.stdout.write(JSON.stringify(report));
