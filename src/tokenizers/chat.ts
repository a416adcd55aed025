/** Chat templates rendered with @huggingface/jinja, with the variables transformers' `apply_chat_template` passes. */
import { Template } from '@huggingface/jinja';
import { TokenizerError } from '../errors.js';

export interface ChatMessage {
  readonly role: string;
  /** Text, or content parts (`{ type: 'text', text }`, ...) for templates that understand them. */
  readonly content: string | readonly Record<string, unknown>[];
  readonly [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the tokens that open an assistant turn. Default false. */
  readonly addGenerationPrompt?: boolean;
  /** Return token ids (true, default) or the rendered string (false). */
  readonly tokenize?: boolean;
  /** A template name from the tokenizer's named templates, or a Jinja template string. */
  readonly chatTemplate?: string;
  /** Tool (function) schemas, passed to the template as `tools`. */
  readonly tools?: readonly Record<string, unknown>[];
  /** Retrieval documents, passed to the template as `documents`. */
  readonly documents?: readonly Record<string, unknown>[];
  /** End the rendering right after the final message's content so a model continues it (no end-of-turn tokens). */
  readonly continueFinalMessage?: boolean;
  /** Extra template variables (e.g. `enable_thinking`, `date_string`). */
  readonly templateKwargs?: Readonly<Record<string, unknown>>;
}

/** transformers' choice: an explicit name, else `tool_use` when tools are given and it exists, else `default`. */
export function selectChatTemplate(templates: ReadonlyMap<string, string>, requested: string | undefined, hasTools: boolean): string {
  if (requested !== undefined) return templates.get(requested) ?? requested;
  const named = (hasTools ? templates.get('tool_use') : undefined) ?? templates.get('default');
  if (named !== undefined) return named;
  if (templates.size > 0) {
    throw new TokenizerError(
      `This tokenizer has several chat templates (${[...templates.keys()].join(', ')}) and none named "default": ` +
        'pass { chatTemplate: name }.',
    );
  }
  throw new TokenizerError(
    'This tokenizer has no chat template (no chat_template in tokenizer_config.json and no chat_template.jinja). ' +
      'Pass one with { chatTemplate: "..." } or set tokenizer.chatTemplate.',
  );
}

const parsed = new Map<string, Template>();

function compile(source: string): Template {
  let t = parsed.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (err) {
      throw new TokenizerError(`The chat template does not parse: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (parsed.size > 64) parsed.clear();
    parsed.set(source, t);
  }
  return t;
}

function finalText(message: ChatMessage | undefined): string {
  const c = message?.content;
  if (typeof c === 'string') return c;
  const texts = (c ?? []).filter((p) => p['type'] === 'text' && typeof p['text'] === 'string');
  return texts.length ? String(texts[texts.length - 1]!['text']) : '';
}

export function renderChatTemplate(
  source: string,
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions,
  specialTokens: Readonly<Record<string, unknown>>,
): string {
  const addGenerationPrompt = options.addGenerationPrompt ?? false;
  if (addGenerationPrompt && options.continueFinalMessage) {
    throw new TokenizerError('addGenerationPrompt and continueFinalMessage cannot both be set.');
  }
  let rendered: string;
  try {
    rendered = compile(source).render({
      ...specialTokens,
      ...(options.templateKwargs ?? {}),
      messages,
      ...(options.tools ? { tools: options.tools } : {}),
      ...(options.documents ? { documents: options.documents } : {}),
      add_generation_prompt: addGenerationPrompt,
    });
  } catch (err) {
    if (err instanceof TokenizerError) throw err;
    throw new TokenizerError(`Rendering the chat template failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (options.continueFinalMessage) {
    const last = finalText(messages[messages.length - 1]).trim();
    const at = last ? rendered.lastIndexOf(last) : -1;
    if (at < 0) throw new TokenizerError('continueFinalMessage: the final message content does not appear in the rendered chat.');
    rendered = rendered.slice(0, at + last.length);
  }
  return rendered;
}
