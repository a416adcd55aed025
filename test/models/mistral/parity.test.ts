// Parity with Python transformers on the fixtures of test/fixtures/parity (see tools/parity).
import { causalParitySuite } from '../causal-parity-suite.js';

causalParitySuite(['mistral']);
