// The demo's word-level vocabulary and its three synthetic tasks, readable as text. Each word follows from the
// word before it by the task's rule:
//
//   count: "count 4 5 6 7 8 9 10 11"                   numbers up by one           (arithmetic successor)
//   back:  "back t s r q p o n m"                      the alphabet backwards      (predecessor)
//   say:   "say cow moo owl hoot duck quack sheep baa" an animal, its sound, the next animal of a fixed list
//                                                      (a constant mapping: a lookup table)
//
// A sequence is one run, or two runs (the second starting somewhere new, e.g. "count 4 5 6 21 22 23 24 25").
// Where a run starts is a free choice, so those words are labelled -100 (no loss): the losses measure only what
// the rule determines, and the model must learn the rule word by word rather than memorise whole sequences.
import type { TrainExample } from 'peft-ts';

/** An ignored label (transformers' -100). */
const IGNORE = -100;

const SPECIAL = ['<pad>', '<eos>'] as const;
export const TASK_NAMES = ['count', 'back', 'say'] as const;
export type TaskName = (typeof TASK_NAMES)[number];
const NUMBERS = Array.from({ length: 40 }, (_, i) => String(i));
const LETTERS = Array.from('abcdefghijklmnopqrstuvwxyz');
const SOUNDS: readonly (readonly [string, string])[] = [
  ['cat', 'meow'], ['dog', 'woof'], ['cow', 'moo'], ['owl', 'hoot'], ['duck', 'quack'], ['sheep', 'baa'],
  ['pig', 'oink'], ['bee', 'buzz'], ['snake', 'hiss'], ['lion', 'roar'], ['frog', 'croak'], ['mouse', 'squeak'],
  ['horse', 'neigh'], ['crow', 'caw'], ['wolf', 'howl'], ['hen', 'cluck'],
];
const ANIMALS = SOUNDS.map(([a]) => a);

/** id -> word (103 words; the model's vocabulary is 112, the rest unused). */
export const VOCAB: readonly string[] = [...SPECIAL, ...TASK_NAMES, ...NUMBERS, ...LETTERS, ...SOUNDS.flat()];
const IDS = new Map(VOCAB.map((w, i) => [w, i]));
export const PAD_ID = 0;
export const EOS_ID = 1;

export function encode(text: string): number[] {
  return text.split(' ').map((w) => {
    const id = IDS.get(w);
    if (id === undefined) throw new Error(`"${w}" is not in the demo vocabulary`);
    return id;
  });
}

export function decode(ids: readonly number[]): string {
  return ids.map((id) => VOCAB[id] ?? `<${id}>`).join(' ');
}

/** Words after the task word in every sequence. */
export const SEQ_WORDS = 8;

/** The word the task's rule puts after `word`, if any. */
export function nextWord(task: TaskName, word: string): string | undefined {
  if (task === 'count') return NUMBERS.includes(word) ? NUMBERS[Number(word) + 1] : undefined;
  if (task === 'back') return LETTERS.indexOf(word) > 0 ? LETTERS[LETTERS.indexOf(word) - 1] : undefined;
  const sound = SOUNDS.find(([a]) => a === word)?.[1];
  if (sound !== undefined) return sound;
  const animal = SOUNDS.find(([, b]) => b === word)?.[0];
  return animal === undefined ? undefined : ANIMALS[(ANIMALS.indexOf(animal) + 1) % ANIMALS.length];
}

/** A run of `n` words by the task's rule from a random valid start. */
function run(task: TaskName, n: number, random: () => number): string[] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  let word = task === 'count' ? pick(NUMBERS.slice(0, NUMBERS.length - n + 1)) : task === 'back' ? pick(LETTERS.slice(n - 1)) : pick(ANIMALS);
  const words = [word];
  while (words.length < n) words.push((word = nextWord(task, word)!));
  return words;
}

/** One sequence: the task word, then one run of 8 words (half the time) or two runs (split 3+5, 4+4 or 5+3). */
function sequence(task: TaskName, random: () => number): { text: string; starts: number[] } {
  const split = random() < 0.5 ? SEQ_WORDS : task === 'say' ? [2, 4, 6][Math.floor(random() * 3)]! : 3 + Math.floor(random() * 3);
  const words = [task, ...run(task, split, random)];
  const starts = [1];
  if (split < SEQ_WORDS) {
    starts.push(words.length);
    words.push(...run(task, SEQ_WORDS - split, random));
  }
  return { text: words.join(' '), starts };
}

/** The example of one sequence: labels are the ids, except where a run starts. */
function example(text: string, starts: readonly number[]): TrainExample {
  const inputIds = encode(text);
  return { inputIds, labels: inputIds.map((id, i) => (starts.includes(i) ? IGNORE : id)) };
}

export interface TaskData {
  name: TaskName;
  train: TrainExample[];
  /** Held out: none of its sequences is in `train`. */
  eval: TrainExample[];
  evalTexts: string[];
  trainTexts: string[];
}

/** Per task, `nTrain` training and `nEval` held-out sequences, all distinct, drawn with `random`. */
export function makeTasks(random: () => number, nTrain = 120, nEval = 30): TaskData[] {
  return TASK_NAMES.map((name) => {
    const drawn = new Map<string, number[]>();
    while (drawn.size < nTrain + nEval) {
      const { text, starts } = sequence(name, random);
      drawn.set(text, starts);
    }
    const all = [...drawn];
    const evalPart = all.slice(0, nEval);
    const trainPart = all.slice(nEval);
    return { name, train: trainPart.map(([t, s]) => example(t, s)), eval: evalPart.map(([t, s]) => example(t, s)), evalTexts: evalPart.map(([t]) => t), trainTexts: trainPart.map(([t]) => t) };
  });
}

/** A single-run sequence of the task that is not in its training set (for prompts and pictures). */
export function unseenRun(task: TaskData, random: () => number): string {
  for (;;) {
    const text = [task.name, ...run(task.name, SEQ_WORDS, random)].join(' ');
    if (!task.trainTexts.includes(text)) return text;
  }
}

/** How many generated words follow the task's rule from the word before them. */
export function scoreContinuation(prompt: string, generated: readonly string[]): number {
  const task = prompt.split(' ')[0] as TaskName;
  let prev = prompt.split(' ').at(-1)!;
  let correct = 0;
  for (const word of generated) {
    if (word === nextWord(task, prev)) correct++;
    prev = word;
  }
  return correct;
}
