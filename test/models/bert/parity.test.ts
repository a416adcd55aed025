// Parity with Python transformers on the fixtures of test/fixtures/parity (see tools/parity).
import { paritySuite } from './encoder-helpers.js';

paritySuite(['bert', 'bert-seqcls']);
