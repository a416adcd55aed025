// Parity with Python transformers on the fixtures of test/fixtures/parity (see tools/parity).
import { paritySuite } from '../bert/encoder-helpers.js';

paritySuite(['distilbert', 'distilbert-seqcls']);
