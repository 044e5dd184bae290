// Validates and dispatches a call from any transport. Nothing untyped reaches a handler, and every
// failure leaves as ErrorInfo.
import { isMethodName, methods, type Handlers, type Reply } from './contract';
import { TabulaError, toErrorInfo } from './errors';

export interface Router {
  handle(method: string, args: unknown): Promise<Reply>;
}

export function createRouter(handlers: Handlers, onBug: (err: unknown) => void = () => {}): Router {
  return {
    async handle(method, args) {
      try {
        if (!isMethodName(method)) throw new TabulaError('unknown-method', `Tabula does not know the request "${String(method).slice(0, 80)}".`);
        const parsed = methods[method].args.safeParse(args ?? {});
        if (!parsed.success) {
          const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'arguments'}: ${i.message}`);
          throw new TabulaError('invalid-argument', `Invalid arguments for ${method}: ${issues.join('; ')}`);
        }
        const handler = handlers[method] as (a: unknown) => unknown;
        return { ok: true, result: await handler(parsed.data) };
      } catch (err) {
        if (!(err instanceof TabulaError)) onBug(err);
        return { ok: false, error: toErrorInfo(err) };
      }
    },
  };
}

/** Turns a wire reply back into a result or a thrown TabulaError (client side of every transport). */
export function unwrap<R>(reply: Reply<R>): R {
  if (reply.ok) return reply.result;
  throw TabulaError.fromInfo(reply.error);
}
