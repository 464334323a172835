// polyfill.ts: libp2p 3 calls Promise.withResolvers, which Node 20 lacks.
// Every entry point imports this file first, before anything that loads libp2p.
declare global {
  interface PromiseConstructor {
    withResolvers?: unknown
  }
}

if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T> () {
      let resolve!: (value: T | PromiseLike<T>) => void
      let reject!: (reason?: unknown) => void
      const promise = new Promise<T>((resolveFn, rejectFn) => { resolve = resolveFn; reject = rejectFn })
      return { promise, resolve, reject }
    }
  })
}

export {}
