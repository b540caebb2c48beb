/**
 * Every provider Concord ships. Adding a provider means adding its folder
 * and one line here.
 */
import type { Provider } from "./Provider.ts"
import { QuickBooks } from "./quickbooks/Adapter.ts"
import { Xero } from "./xero/Adapter.ts"

export const providers: ReadonlyArray<Provider> = [QuickBooks, Xero]

export const byId = (id: string): Provider | undefined => providers.find((p) => p.id === id)
