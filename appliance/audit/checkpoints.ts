import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';

/** Version of the checkpoint statement layout; a new layout gets a new number. */
export const statementVersion = 1;

/** Signature scheme of every checkpoint, as `openssl dgst -sha256 -verify` checks it. */
export const signatureAlgorithm = 'ECDSA-P256-SHA256 (DER, RFC 3279)';

/**
 * The document the HSM signing key signs for one checkpoint.
 *
 * IMPORTANT: the signed bytes are JSON.stringify of these fields in this
 * order, without whitespace, encoded as UTF-8. Stored statements are never
 * rebuilt, so a new field or order needs a new `version`.
 */
export interface CheckpointStatement {
  version: number;
  type: 'audit-checkpoint';
  /** Seq of the last audit record the checkpoint covers. */
  seq: number;
  /** Hash (hex HMAC-SHA256) of the audit record at `seq`. */
  hash: string;
  /** Records in the chain up to and including `seq`; the chain starts at seq 1 without gaps. */
  recordCount: number;
  /** When the checkpoint was signed, ISO 8601 UTC. */
  time: string;
  /** RFC 7512 PKCS#11 URI of the private key that signed the statement. */
  signingKeyUri: string;
}

/** One stored checkpoint. */
export interface Checkpoint {
  seq: number;
  hash: string;
  recordCount: number;
  time: string;
  signingKeyUri: string;
  /** The signed bytes, UTF-8 canonical JSON of a CheckpointStatement. */
  statement: string;
  /** DER ECDSA-Sig-Value over SHA-256 of `statement`. */
  signature: Buffer;
}

/** A checkpoint that fails verification, and why. */
export interface BrokenCheckpoint {
  seq: number;
  reason: string;
}

interface CheckpointRow {
  seq: number;
  hash: string;
  record_count: number;
  time: string;
  signing_key_uri: string;
  statement: string;
  signature: Buffer;
}

/** Serialises a statement into the exact bytes that are signed; see CheckpointStatement. */
export function canonicalStatement(statement: CheckpointStatement): string {
  return JSON.stringify({
    version: statement.version,
    type: statement.type,
    seq: statement.seq,
    hash: statement.hash,
    recordCount: statement.recordCount,
    time: statement.time,
    signingKeyUri: statement.signingKeyUri,
  });
}

/**
 * Signs a checkpoint of the chain head `head` with the HSM signing key. The
 * SHA-256 digest is computed here because SoftHSM 2.6.1 lacks
 * CKM_ECDSA_SHA256; the token signs the digest with CKM_ECDSA.
 */
export function signCheckpoint(
  keys: KeyProvider,
  head: { seq: number; hash: string },
  time: Date = new Date(),
): Checkpoint {
  const statement = canonicalStatement({
    version: statementVersion,
    type: 'audit-checkpoint',
    seq: head.seq,
    hash: head.hash,
    recordCount: head.seq,
    time: time.toISOString(),
    signingKeyUri: keys.signingKeyUri,
  });
  const digest = crypto.createHash('sha256').update(statement, 'utf8').digest();

  return {
    seq: head.seq,
    hash: head.hash,
    recordCount: head.seq,
    time: time.toISOString(),
    signingKeyUri: keys.signingKeyUri,
    statement,
    signature: keys.signDigest(digest),
  };
}

/** Reads and writes the audit_checkpoints table. */
export class CheckpointStore {
  constructor(private readonly database: Database) {}

  async insert(checkpoint: Checkpoint, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      `INSERT INTO audit_checkpoints (seq, hash, record_count, time, signing_key_uri, statement, signature)
       VALUES (:seq, :hash, :recordCount, :time, :signingKeyUri, :statement, :signature)`,
      { transaction, replacements: { ...checkpoint } },
    );
  }

  /** Returns the checkpoint with the highest seq, or undefined before the first one. */
  async latest(transaction?: Transaction): Promise<Checkpoint | undefined> {
    const rows = await this.database.sequelize.query<CheckpointRow>(
      'SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1',
      { type: QueryTypes.SELECT, transaction },
    );
    return rows[0] ? toCheckpoint(rows[0]) : undefined;
  }

  async get(seq: number): Promise<Checkpoint | undefined> {
    const rows = await this.database.sequelize.query<CheckpointRow>(
      'SELECT * FROM audit_checkpoints WHERE seq = :seq',
      { type: QueryTypes.SELECT, replacements: { seq } },
    );
    return rows[0] ? toCheckpoint(rows[0]) : undefined;
  }

  /** Lists checkpoints newest first; `beforeSeq` pages backwards. */
  async list(limit: number, beforeSeq?: number): Promise<Checkpoint[]> {
    const rows = await this.database.sequelize.query<CheckpointRow>(
      `SELECT * FROM audit_checkpoints ${beforeSeq === undefined ? '' : 'WHERE seq < :beforeSeq'}
       ORDER BY seq DESC LIMIT :limit`,
      { type: QueryTypes.SELECT, replacements: { limit, beforeSeq: beforeSeq ?? null } },
    );
    return rows.map(toCheckpoint);
  }

  /**
   * Checks every checkpoint: its statement matches its row, its signature
   * verifies with the signing public key, and the audit record at its seq
   * still has the hash it signed. Checkpoints up to `sealed.seq` are checked
   * with the old token's public key that a restore stored. Returns how many were checked and those that fail.
   */
  async verifyAll(
    signer: Pick<KeyProvider, 'signingKeyUri' | 'signingPublicKeyPem'>,
    sealed?: { seq: number; signingPublicKeyPem: string },
  ): Promise<{ checked: number; broken: BrokenCheckpoint[] }> {
    const rows = await this.database.sequelize.query<
      CheckpointRow & { record_hash: string | null }
    >(
      `SELECT c.*, r.hash AS record_hash FROM audit_checkpoints c
       LEFT JOIN audit_records r ON r.seq = c.seq ORDER BY c.seq`,
      { type: QueryTypes.SELECT },
    );
    const publicKeyPem = signer.signingPublicKeyPem();

    const broken: BrokenCheckpoint[] = [];
    for (const row of rows) {
      // Checkpoints up to a restore's sealed head were signed by the old token's key.
      const checkpoint = toCheckpoint(row);
      const key =
        sealed && row.seq <= sealed.seq
          ? { signingKeyUri: statementSigner(checkpoint), publicKeyPem: sealed.signingPublicKeyPem }
          : { signingKeyUri: signer.signingKeyUri, publicKeyPem };
      const reason = checkpointProblem(checkpoint, row.record_hash, key);
      if (reason) broken.push({ seq: row.seq, reason });
    }
    return { checked: rows.length, broken };
  }
}

/** Returns why one checkpoint fails verification, or undefined when it holds. */
function checkpointProblem(
  checkpoint: Checkpoint,
  recordHash: string | null,
  signer: { signingKeyUri: string; publicKeyPem: string },
): string | undefined {
  let statement: CheckpointStatement;
  try {
    statement = JSON.parse(checkpoint.statement) as CheckpointStatement;
  } catch {
    return `checkpoint at seq ${checkpoint.seq}: the stored statement is not valid JSON`;
  }
  if (statement.seq !== checkpoint.seq || statement.hash !== checkpoint.hash) {
    return `checkpoint at seq ${checkpoint.seq}: the signed statement names seq ${statement.seq} and hash ${statement.hash}, not the values stored beside it`;
  }

  // NOTE: only the current signing key is known here, so checkpoints signed
  // before a key change are reported as broken rather than checked.
  if (statement.signingKeyUri !== signer.signingKeyUri) {
    return `checkpoint at seq ${checkpoint.seq}: signed by ${statement.signingKeyUri}, not by the current signing key ${signer.signingKeyUri}`;
  }
  const valid = crypto.verify(
    'sha256',
    Buffer.from(checkpoint.statement, 'utf8'),
    signer.publicKeyPem,
    checkpoint.signature,
  );
  if (!valid) {
    return `checkpoint at seq ${checkpoint.seq}: the signature does not verify with the signing public key`;
  }

  if (recordHash === null) {
    return `checkpoint at seq ${checkpoint.seq}: the audit chain has no record at seq ${checkpoint.seq}`;
  }
  if (recordHash !== checkpoint.hash) {
    return `checkpoint at seq ${checkpoint.seq}: the audit record at seq ${checkpoint.seq} has hash ${recordHash}, but the checkpoint signed ${checkpoint.hash}`;
  }
  return undefined;
}

/** Returns the signing key URI that a checkpoint's statement names, or its row's when unreadable. */
function statementSigner(checkpoint: Checkpoint): string {
  try {
    return (JSON.parse(checkpoint.statement) as CheckpointStatement).signingKeyUri;
  } catch {
    return checkpoint.signingKeyUri;
  }
}

function toCheckpoint(row: CheckpointRow): Checkpoint {
  return {
    seq: row.seq,
    hash: row.hash,
    recordCount: row.record_count,
    time: row.time,
    signingKeyUri: row.signing_key_uri,
    statement: row.statement,
    signature: Buffer.from(row.signature),
  };
}
