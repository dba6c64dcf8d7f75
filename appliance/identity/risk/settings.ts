import { readWebAuthnSettings, type WebAuthnSettings } from '../webauthn/settings';

/**
 * Weights and thresholds of the sign-in risk score. A score is the sum of the
 * weights of the signals present; below `mediumThreshold` it is low.
 */
export interface RiskSettings {
  /** RISK_WEIGHT_UNKNOWN_DEVICE: the browser has no device cookie of this user. */
  unknownDevice: number;
  /** RISK_WEIGHT_NEW_IP: the source IP never appears in the user's successful sign-ins. */
  newSourceIp: number;
  /** RISK_WEIGHT_UNUSUAL_HOUR: no earlier successful sign-in within `hourWindow` hours of the current UTC hour. */
  unusualHour: number;
  /** RISK_WEIGHT_RECENT_FAILURE: added per failed password in the last `failureWindowMinutes`. */
  recentFailure: number;
  /** RISK_MAX_FAILURE_WEIGHT: cap on the sum of the failure weights. */
  maxFailureWeight: number;
  /** RISK_MEDIUM_THRESHOLD: from this score on, the sign-in needs a second factor. */
  mediumThreshold: number;
  /** RISK_HIGH_THRESHOLD: from this score on, the sign-in is denied. */
  highThreshold: number;
  /** RISK_HOUR_WINDOW: hours either side of the current hour that count as usual. */
  hourWindow: number;
  /** RISK_MIN_HISTORY: successful sign-ins needed before the hour signal is judged. */
  minHistoryForHour: number;
  /** RISK_FAILURE_WINDOW_MINUTES: how far back failed passwords count. */
  failureWindowMinutes: number;
  /** RISK_HISTORY_DAYS: how far back the IP and hour history reaches. */
  historyDays: number;
}

export const defaultRiskSettings: RiskSettings = {
  unknownDevice: 25,
  newSourceIp: 25,
  unusualHour: 20,
  recentFailure: 10,
  maxFailureWeight: 30,
  mediumThreshold: 40,
  highThreshold: 80,
  hourWindow: 2,
  minHistoryForHour: 5,
  failureWindowMinutes: 15,
  historyDays: 90,
};

/** Sign-in hardening settings: WebAuthn, device trust and risk scoring. */
export interface SignInSettings {
  webauthn: WebAuthnSettings;
  risk: RiskSettings;
  /** DEVICE_TRUST_DAYS: days a device stays trusted after the user marks it. */
  deviceTrustDays: number;
}

const riskVariables: Record<keyof RiskSettings, string> = {
  unknownDevice: 'RISK_WEIGHT_UNKNOWN_DEVICE',
  newSourceIp: 'RISK_WEIGHT_NEW_IP',
  unusualHour: 'RISK_WEIGHT_UNUSUAL_HOUR',
  recentFailure: 'RISK_WEIGHT_RECENT_FAILURE',
  maxFailureWeight: 'RISK_MAX_FAILURE_WEIGHT',
  mediumThreshold: 'RISK_MEDIUM_THRESHOLD',
  highThreshold: 'RISK_HIGH_THRESHOLD',
  hourWindow: 'RISK_HOUR_WINDOW',
  minHistoryForHour: 'RISK_MIN_HISTORY',
  failureWindowMinutes: 'RISK_FAILURE_WINDOW_MINUTES',
  historyDays: 'RISK_HISTORY_DAYS',
};

/** Reads the WEBAUTHN_*, RISK_* and DEVICE_TRUST_DAYS settings; throws naming the variable on a bad value. */
export function readSignInSettings(env: NodeJS.ProcessEnv): SignInSettings {
  const risk = { ...defaultRiskSettings };
  for (const [field, name] of Object.entries(riskVariables) as [keyof RiskSettings, string][]) {
    risk[field] = wholeNumber(env, name, defaultRiskSettings[field]);
  }
  if (risk.highThreshold <= risk.mediumThreshold)
    throw new Error(
      `Invalid RISK_HIGH_THRESHOLD=${risk.highThreshold}: it must be greater than RISK_MEDIUM_THRESHOLD=${risk.mediumThreshold}.`,
    );

  return {
    webauthn: readWebAuthnSettings(env),
    risk,
    deviceTrustDays: wholeNumber(env, 'DEVICE_TRUST_DAYS', 30),
  };
}

/** Parses a whole number of 0 or more; weights may be 0 to switch a signal off. */
function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;

  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0)
    throw new Error(
      `Invalid ${name}=${JSON.stringify(raw)}: expected a whole number of 0 or more.`,
    );
  return value;
}
