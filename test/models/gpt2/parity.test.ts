// Parity of GPT-2 with Python transformers on the fixtures of test/fixtures/parity (see tools/parity).
import { causalParitySuite } from '../causal-parity-suite.js';
import { realdataPath } from '../../helpers/realdata.js';

causalParitySuite(['gpt2']);
causalParitySuite(['tiny-random-gpt2'], { fixtureKey: 'tiny-random-gpt2', weightsDir: realdataPath('tiny-random-gpt2') });
