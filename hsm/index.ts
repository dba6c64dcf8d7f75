export { HsmError, type HsmErrorCode } from './errors';
export type { KeyProvider } from './key-provider';
export { checkMechanismSupport, checkMechanisms, type RequiredMechanism } from './mechanisms';
export { openKeyProvider, Pkcs11KeyProvider, type KeyProviderOptions } from './pkcs11-key-provider';
export type { HsmConfig } from './pkcs11-module';
export {
  ensureToken,
  type TokenSetupConfig,
  type TokenSetupOptions,
  type TokenSetupResult,
} from './token-setup';
