/**
 * Sets up the appliance HSM token: SoftHSM configuration, PIN files, token,
 * master key, audit key and signing key pair, skipping whatever exists.
 * Prints what it did and never prints a PIN.
 *
 *   node --import tsx scripts/init-token.ts
 *
 * Reads the same environment as the appliance (APPLIANCE_DATA_DIR,
 * PKCS11_MODULE, SOFTHSM2_CONF, HSM_TOKEN_LABEL, HSM_PIN_FILE, HSM_SO_PIN_FILE).
 */
import { loadConfig } from '../appliance/platform/config';
import { HsmError, ensureToken, type TokenSetupResult } from '../hsm';
import { auditKeyLabel, masterKeyLabel } from '../hsm/appliance-keys';
import { signingKeyLabel } from '../hsm/signing-key';

function describe(result: TokenSetupResult, softhsmConf: string): string[] {
  const done = (changed: boolean, what: string): string =>
    `${changed ? 'created' : 'exists '}  ${what}`;

  return [
    done(result.softhsmConfigCreated, `SoftHSM configuration ${softhsmConf}`),
    ...result.pinFilesCreated.map((file) => `created  PIN file ${file}`),
    ...(result.pinFileModesFixed ? ['fixed    PIN file modes to 0600 (directory 0700)'] : []),
    done(result.createdToken, `token "${result.tokenLabel}" (serial ${result.tokenSerial})`),
    done(
      result.createdKeys.includes(masterKeyLabel),
      `master key ${result.masterKeyUri} (CKA_ID ${result.masterKeyId})`,
    ),
    done(
      result.createdKeys.includes(auditKeyLabel),
      `audit key ${result.auditKeyUri} (CKA_ID ${result.auditKeyId})`,
    ),
    done(
      result.createdKeys.includes(signingKeyLabel),
      `signing key pair ${result.signingKeyUri} (CKA_ID ${result.signingKeyId})`,
    ),
  ];
}

function main(): number {
  const config = loadConfig();

  try {
    const result = ensureToken(config);
    for (const line of describe(result, config.hsm.softhsmConf)) console.log(line);
    return 0;
  } catch (error) {
    if (!(error instanceof HsmError)) throw error;

    console.error(
      `init-token: ${error.message} [${error.code}${error.ckr ? `, ${error.ckr}` : ''}]`,
    );
    return 1;
  }
}

process.exitCode = main();
