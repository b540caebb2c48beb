/**
 * Every provider Concord ships. Adding a provider means adding its folder
 * and one line here.
 */
import type { Provider } from "./Provider.ts"

export const providers: ReadonlyArray<Provider> = []

export const byId = (id: string): Provider | undefined => providers.find((p) => p.id === id)
