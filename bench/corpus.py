"""A seeded, realistic CloudTrail corpus for `make bench`, built from the fixture records.

Templates: every ``tests/fixtures/<cause-id>/*.json`` record (failures, labelled by their
directory) and ``tests/fixtures/success/*.json`` (successful calls). Nothing here reads the
auditor: the corpus is what CloudTrail would write, the auditor is measured on it.

Shape (why these numbers):

* Files. CloudTrail writes one file per account and region about every 5 minutes, hundreds to
  a few thousand records each; an organization trail has many accounts and regions. The
  generator works file by file: each file belongs to one (account, region) pair, drawn from
  8 accounts x 5 regions with production/us-east-1 heavier, and its records' times increase
  inside a 5-minute window. ``records(n)`` is those files concatenated.
* Mix per file: 60 % successful Secrets Manager / KMS calls, 5 % other services' records (S3,
  STS, EC2: an organization trail mixes services), 35 % failures. Failures are spread over
  causes by ``CAUSE_WEIGHTS`` (an estimate of a real stream: access denied dominates, then
  not-found, throttling, validation, expired credentials); a cause directory not listed gets
  weight 1; every cause directory is forced once at the start so every cause is present.
* Repetition. Real failure streams repeat: the same role fails on the same secret every
  minute until someone fixes it; real successes repeat even more (an app reads its secret on
  every cold start). So records come from "situations" (template + principal + secret/key +
  client), drawn with a Zipf(1.0) law from a pool per (account, region, cause): about one
  distinct failure situation per 8 failures and one success situation per 20 successes. A
  situation fixes the role or user, the secret name, the key ids, the source IP pool and the
  user agent; every record still gets a fresh eventID/requestID (uuid4 from the seeded RNG),
  time, assumed-role session name (per record for SDK sessions, per instance for EC2, stable
  for Lambda functions) and temporary access key id. Cardinalities at N = 100,000: a few
  hundred principals, thousands of secrets and keys, ~4,000 distinct failure situations.
* Variation keeps each template's shape: values are replaced as whole strings (ARNs, account
  ids, uuids, the region), secret names get a team prefix in front (so a name's ending, e.g.
  a hyphen and six characters, or a service prefix like ``rds!``, is kept), roles and users
  come from realistic pools. Record sizes are the fixtures' (0.8-2.2 KB, median ~1.5 KB).

The cache (``bench/.corpus/``) is keyed by seed, N, records per file and a digest of the
templates and of this generator, so a changed fixture regenerates it.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CACHE = ROOT / "bench" / ".corpus"

SHARE_SUCCESS, SHARE_OTHER = 0.60, 0.05
PER_FILE = 2_000
FAILURES_PER_SITUATION, SUCCESSES_PER_SITUATION = 8, 20
ZIPF_S = 1.0

#: Share of failures per cause (relative weights; an estimate of a real stream, see above).
CAUSE_WEIGHTS = {
    "access-denied.identity-policy": 14, "access-denied.kms-key": 6, "access-denied.resource-policy": 4,
    "access-denied.explicit-deny": 4, "access-denied.organizations-policy": 3, "access-denied.temporary-credentials": 3,
    "access-denied.unspecified": 3, "access-denied.permissions-boundary": 2, "access-denied.condition": 2,
    "access-denied.session-policy": 1.5, "access-denied.vpc-endpoint-policy": 1.5,
    "secret.not-found": 12, "throttling": 6, "validation": 5, "credentials.expired": 5,
    "credentials.invalid-signature": 2, "kms.key-not-found": 2, "kms.invalid-ciphertext": 2, "secret.pending-deletion": 2,
    "unknown": 2, "kms.key-disabled": 1, "kms.key-pending-deletion": 1, "secret.partial-arn": 1,
    "secret.service-managed": 1, "consistency.not-yet-visible": 1, "rotation.failed": 1, "kms.asymmetric-key": 0.5,
}

DOC_ACCOUNTS = ("111122223333", "444455556666", "777788889999", "123456789012")
REGIONS = (("us-east-1", 5), ("eu-west-1", 2), ("us-west-2", 1.5), ("eu-central-1", 1), ("ap-southeast-2", 0.5))
TEAMS = ("payments", "orders", "identity", "search", "billing", "ledger", "catalog", "risk", "growth", "platform",
         "data", "ml", "notify", "checkout", "inventory", "shipping", "support", "reporting", "auth", "edge")
COMPONENTS = ("api", "worker", "cron", "etl", "web", "consumer", "scheduler", "migrator", "gateway", "indexer")
ENVS = ("prod", "staging", "dev")
USER_AGENTS = (
    "Boto3/1.35.{p} md/Botocore#1.35.{p} ua/2.0 os/linux#5.10.{k}-amzn2.x86_64 md/arch#x86_64 lang/python#3.12.{m} "
    "md/pyimpl#CPython exec-env/AWS_ECS_FARGATE cfg/retry-mode#legacy Botocore/1.35.{p}",
    "aws-sdk-go-v2/1.32.{p} os/linux lang/go#1.23.{m} md/GOOS#linux md/GOARCH#amd64 api/secretsmanager#1.34.{k}",
    "aws-sdk-java/2.28.{p} Linux/5.10.{k}-214.880.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/21.0.{m}+7-LTS Java/21.0.{m} "
    "vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard",
    "aws-sdk-nodejs/2.1692.{p} linux/v20.18.{m} exec-env/AWS_Lambda_nodejs20.x promise",
    "aws-sdk-js/3.693.{p} ua/2.1 os/linux#5.10.{k} lang/js md/nodejs#20.18.{m} api/secrets-manager#3.693.{p}",
    "aws-cli/2.22.{p} md/awscrt#0.23.{m} ua/2.0 os/macos#24.1.{k} md/arch#arm64 lang/python#3.12.{m} md/pyimpl#CPython "
    "cfg/retry-mode#standard md/installer#source md/prompt#off command/secretsmanager.get-secret-value",
    "Terraform/1.9.{m} (+https://www.terraform.io) terraform-provider-aws/5.78.{p} (+https://registry.terraform.io/"
    "providers/hashicorp/aws) aws-sdk-go-v2/1.32.{k} os/linux lang/go#1.23.{m} md/GOOS#linux md/GOARCH#amd64",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.{k}.{p} Safari/537.36",
)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_ASSUMED = re.compile(r"^arn:(aws[\w-]*):sts::(\d+):assumed-role/([^/]+)/(.+)$")
_USER = re.compile(r"^arn:(aws[\w-]*):iam::(\d+):user/(?:.*/)?([^/]+)$")
_SECRET_FIELDS = ("secretId", "name", "SecretId", "secretArn", "SecretArn", "SecretARN")
_PER_RECORD = ("eventID", "requestID", "sharedEventID")


# ------------------------------------------------------------------------------------------------
# Templates
# ------------------------------------------------------------------------------------------------
@dataclass
class Template:
    label: str  # the fixture directory: a cause id, or "success"
    path: str
    record: dict
    text: str = ""
    accounts: list = field(default_factory=list)
    uuids: list = field(default_factory=list)
    secret_base: str = ""


def _secret_base(record: dict) -> str:
    """The shortest secret name the record names (ARN prefix removed): every other mention
    contains it, so prefixing it renames the secret everywhere in the record."""
    found = []
    places = [record.get("requestParameters"), record.get("additionalEventData"), record.get("serviceEventDetails")]
    params = record.get("requestParameters")
    if isinstance(params, dict) and isinstance(params.get("encryptionContext"), dict):
        places.append(params["encryptionContext"])
    for place in places:
        if isinstance(place, dict):
            for name in _SECRET_FIELDS:
                value = place.get(name)
                if isinstance(value, str) and value:
                    found.append(value.split(":secret:", 1)[1] if ":secret:" in value else value)
    for res in record.get("resources") or []:
        if isinstance(res, dict) and isinstance(res.get("ARN"), str) and ":secret:" in res["ARN"]:
            found.append(res["ARN"].split(":secret:", 1)[1])
    found = [f for f in found if len(f) >= 4 and not f.startswith("arn:")]
    return min(found, key=len) if found else ""


def load_templates(fixtures: Path = FIXTURES) -> dict[str, list[Template]]:
    by_label: dict[str, list[Template]] = {}
    for path in sorted(fixtures.glob("*/*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            continue
        text = json.dumps(record)
        skip = {record.get(k) for k in _PER_RECORD}
        t = Template(path.parent.name, str(path.relative_to(fixtures)), record, text,
                     sorted({a for a in re.findall(r"\d{12}", text) if a in DOC_ACCOUNTS}),
                     sorted(set(_UUID.findall(text)) - skip), _secret_base(record))
        by_label.setdefault(t.label, []).append(t)
    if "success" not in by_label or len(by_label) < 2:
        raise RuntimeError(f"no fixture templates under {fixtures} (need success/ and at least one cause directory)")
    return by_label


def digest(fixtures: Path = FIXTURES) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(fixtures.glob("*/*.json")):
        h.update(str(path.relative_to(fixtures)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


# ------------------------------------------------------------------------------------------------
# The world: accounts, principals, secrets, keys
# ------------------------------------------------------------------------------------------------
class World:
    def __init__(self, seed: int):
        rng = random.Random(f"world:{seed}")
        self.accounts = [f"{rng.randrange(10**11, 10**12):012d}" for _ in range(8)]
        self.account_weights = [8, 5, 3, 2, 1, 1, 0.5, 0.5]  # production accounts carry most traffic
        self.pairs = [(a, r) for a in self.accounts for r, _ in REGIONS]
        aw = dict(zip(self.accounts, self.account_weights))
        self.pair_weights = list(itertools.accumulate(aw[a] * w for a in self.accounts for _, w in REGIONS))
        # ~40 roles and 6 users per account: a few hundred principals in all.
        self.roles = {a: [self._role(rng) for _ in range(40)] for a in self.accounts}
        self.users = {a: [f"{rng.choice(['ci', 'deploy', 'svc', 'legacy', 'ops'])}-{rng.choice(TEAMS)}-{i}" for i in range(6)]
                      for a in self.accounts}
        self.keys = {a: [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(60)] for a in self.accounts}
        # Secret names: team prefix in front of the template's name; 20 teams x 3 envs x components.
        self.prefixes = [f"{e}/{t}/{c}" for e in ENVS for t in TEAMS for c in COMPONENTS]

    @staticmethod
    def _role(rng: random.Random) -> str:
        team, comp, env = rng.choice(TEAMS), rng.choice(COMPONENTS), rng.choice(ENVS)
        style = rng.random()
        if style < 0.45:  # CloudFormation / CDK generated
            suffix = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(12))
            return f"{team}-{comp}-{env}-{rng.choice(['TaskRole', 'ServiceRole', 'FunctionRole'])}{suffix}"
        if style < 0.8:
            return f"{team}-{comp}-{env}"
        return f"AWSReservedSSO_{rng.choice(['Developer', 'ReadOnly', 'Admin', 'DataEngineer'])}_{rng.getrandbits(64):016x}"


def _zipf_cum(k: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (i + 1) ** ZIPF_S for i in range(k)))


def _key_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


class Situation:
    """One principal doing one kind of call on one resource from one client; records vary per call."""

    def __init__(self, world: World, template: Template, account: str, region: str, rng: random.Random):
        text = template.text
        record = template.record
        self.template = template
        self.label = template.label
        # Accounts: the recipient is this file's account; other documentation accounts map to other org accounts.
        recipient = record.get("recipientAccountId") if record.get("recipientAccountId") in DOC_ACCOUNTS else None
        others = [a for a in world.accounts if a != account]
        mapping = {}
        for doc in template.accounts:
            mapping[doc] = account if doc == recipient or (recipient is None and not mapping) else rng.choice(others)
        ident = record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}
        arn = ident.get("arn") if isinstance(ident.get("arn"), str) else ""
        subs: list[tuple[str, str]] = []
        principal_account = mapping.get(ident.get("accountId"), account)
        self.session_style = None
        m = _ASSUMED.match(arn)
        if m:
            partition, _, role, session = m.groups()
            new_role = rng.choice(world.roles[principal_account])
            issuer = ((ident.get("sessionContext") or {}).get("sessionIssuer") or {})
            if isinstance(issuer.get("arn"), str):
                path = issuer["arn"].split(":role/", 1)[-1].rsplit("/", 1)
                path = path[0] + "/" if len(path) == 2 else ""
                subs.append((issuer["arn"], f"arn:{partition}:iam::{principal_account}:role/{path}{new_role}"))
                subs.append((f'"userName": "{role}"', f'"userName": "{new_role}"'))
            subs.append((arn, f"arn:{partition}:sts::{principal_account}:assumed-role/{new_role}/@@SESSION@@"))
            if isinstance(ident.get("principalId"), str) and ident["principalId"].endswith(":" + session):
                subs.append((ident["principalId"], ident["principalId"].rsplit(":", 1)[0] + ":@@SESSION@@"))
            self.session_style = rng.choices(["sdk", "ec2", "lambda", "ecs", "sso"], [3, 2, 3, 2, 1])[0]
            self.session_fixed = new_role.lower()[:40] if self.session_style == "lambda" else ""
            self.instances = [f"i-{rng.getrandbits(68):017x}" for _ in range(3)]
            self.email = f"{rng.choice(['ana', 'ben', 'chen', 'dara', 'eli', 'fatou', 'goran', 'hana'])}.{rng.randrange(100)}@example.com"
        else:
            u = _USER.match(arn)
            if u:
                partition, _, name = u.groups()
                new_user = rng.choice(world.users[principal_account])
                subs.append((arn, arn.replace(f"::{u.group(2)}:", f"::{principal_account}:").rsplit("/", 1)[0] + f"/{new_user}"))
                subs.append((f'"userName": "{name}"', f'"userName": "{new_user}"'))
                if isinstance(ident.get("accessKeyId"), str) and ident["accessKeyId"].startswith("AKIA"):
                    subs.append((ident["accessKeyId"], _key_id(rng, "AKIA")))
        akid = ident.get("accessKeyId")
        self.temp_key = isinstance(akid, str) and akid.startswith("ASIA")
        if self.temp_key:
            subs.append((akid, "@@AKID@@"))
        # Secret: a team prefix in front of the name (its ending, e.g. "-AbCdEf", and any "rds!" prefix kept).
        base = template.secret_base
        if base and "!" not in base:
            subs.append((base, f"{rng.choice(world.prefixes)}/{base}"))
        for old in template.uuids:
            subs.append((old, rng.choice(world.keys[account])))
        for doc, new in mapping.items():
            subs.append((doc, new))
        old_region = record.get("awsRegion")
        if isinstance(old_region, str) and old_region:
            subs.append((old_region, region))
        ip = record.get("sourceIPAddress")
        self.ips = []
        if isinstance(ip, str) and _IPV4.match(ip):
            subs.append((f'"sourceIPAddress": "{ip}"', '"sourceIPAddress": "@@IP@@"'))
            private = ip.startswith("10.") or rng.random() < 0.4
            self.ips = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" if private else
                        f"{rng.choice([3, 18, 34, 52, 54, 198, 203])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                        for _ in range(rng.randrange(1, 4))]
        ua = record.get("userAgent")
        self.user_agent = None
        if isinstance(ua, str) and "amazonaws.com" not in ua and "AWS Internal" not in ua:
            self.user_agent = rng.choice(USER_AGENTS).format(p=rng.randrange(90), m=rng.randrange(12), k=rng.randrange(300))
        for old, new in subs:
            text = text.replace(old, new)
        self.text = text

    def record(self, rng: random.Random, when: str) -> dict:
        text = self.text
        if self.session_style is not None:
            style = self.session_style
            session = (self.session_fixed if style == "lambda" else rng.choice(self.instances) if style == "ec2"
                       else f"botocore-session-{rng.randrange(10**9, 10**10)}" if style == "sdk"
                       else f"{rng.getrandbits(128):032x}" if style == "ecs" else self.email)
            text = text.replace("@@SESSION@@", session)
        if self.temp_key:
            text = text.replace("@@AKID@@", _key_id(rng, "ASIA"))
        if self.ips:
            text = text.replace("@@IP@@", rng.choice(self.ips))
        rec = json.loads(text)
        for name in _PER_RECORD:
            if name in rec:
                rec[name] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        rec["eventTime"] = when
        if self.user_agent is not None:
            rec["userAgent"] = self.user_agent
        return rec


_OTHER = (
    ("s3.amazonaws.com", "GetObject", lambda r: {"bucketName": f"{r.choice(TEAMS)}-artifacts-{r.randrange(40)}",
                                               "Host": "s3.amazonaws.com", "key": f"builds/{uuid.UUID(int=r.getrandbits(128))}.zip"}),
    ("s3.amazonaws.com", "PutObject", lambda r: {"bucketName": f"{r.choice(TEAMS)}-data-{r.randrange(40)}",
                                               "Host": "s3.amazonaws.com", "key": f"ingest/{r.randrange(10**6)}.parquet"}),
    ("sts.amazonaws.com", "AssumeRole", lambda r: {"roleArn": f"arn:aws:iam::{r.randrange(10**11, 10**12)}:role/{r.choice(TEAMS)}-deploy",
                                                 "roleSessionName": f"session-{r.getrandbits(40):010x}", "durationSeconds": 3600}),
    ("sts.amazonaws.com", "GetCallerIdentity", lambda r: None),
    ("ec2.amazonaws.com", "DescribeInstances", lambda r: {"instancesSet": {}, "filterSet": {}, "maxResults": 1000}),
)


def _other_service(rng: random.Random, base: dict) -> dict:
    """Another service's record from the same principal (an organization trail mixes services)."""
    source, name, params = rng.choice(_OTHER)
    rec = dict(base)
    rec.pop("errorCode", None)
    rec.pop("errorMessage", None)
    rec.pop("additionalEventData", None)
    rec["eventSource"], rec["eventName"] = source, name
    rec["requestParameters"] = params(rng)
    rec["responseElements"] = None
    rec["resources"] = ([{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{rec['requestParameters']['bucketName']}/"
                          f"{rec['requestParameters']['key']}"}] if source == "s3.amazonaws.com" else [])
    if isinstance(rec.get("tlsDetails"), dict):
        rec["tlsDetails"] = dict(rec["tlsDetails"], clientProvidedHostHeader=f"{source.split('.')[0]}.amazonaws.com")
    return rec


# ------------------------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------------------------
@dataclass
class Corpus:
    lines: list[bytes]  # one record's JSON each
    labels: list[str]  # fixture directory of each record's template ("success", a cause id, "other-service")
    files: list[tuple[str, int, int]]  # (CloudTrail file name, first record, end) per log file


def generate(n: int, seed: int = 42, per_file: int = PER_FILE, fixtures: Path = FIXTURES) -> Corpus:
    templates = load_templates(fixtures)
    successes = templates["success"]
    causes = sorted(k for k in templates if k != "success")
    cause_cum = list(itertools.accumulate(CAUSE_WEIGHTS.get(c, 1) for c in causes))
    world = World(seed)
    rng = random.Random(seed)
    pools: dict[tuple, dict[int, Situation]] = {}
    cums: dict[int, list[float]] = {}
    share_fail = 1 - SHARE_SUCCESS - SHARE_OTHER
    n_pairs = len(world.pairs)

    def situation(kind: str, account: str, region: str, expected: float, per: int) -> Situation:
        k = max(3, round(expected / per / n_pairs))
        cum = cums.get(k) or cums.setdefault(k, _zipf_cum(k))
        index = bisect.bisect(cum, rng.random() * cum[-1])
        pool = pools.setdefault((kind, account, region), {})
        found = pool.get(index)
        if found is None:
            srng = random.Random(f"{seed}:{kind}:{account}:{region}:{index}")
            group = successes if kind == "success" else templates[kind]
            found = pool[index] = Situation(world, srng.choice(group), account, region, srng)
        return found

    lines: list[bytes] = []
    labels: list[str] = []
    files: list[tuple[str, int, int]] = []
    forced = causes[:]
    rng.shuffle(forced)
    clock = 1_795_478_400  # 2026-11-24T00:00:00Z
    dumps = json.dumps
    while len(lines) < n:
        account, region = world.pairs[bisect.bisect(world.pair_weights, rng.random() * world.pair_weights[-1])]
        count = min(per_file, n - len(lines))
        start = clock + 300 * (len(files) // 4)  # a few pairs write a file in each 5-minute slot
        offsets = sorted(rng.randrange(300) for _ in range(count))
        first = len(lines)
        for offset in offsets:
            t = start + offset
            when = f"{_iso(t)}"
            roll = rng.random()
            if forced and roll >= SHARE_SUCCESS + SHARE_OTHER:
                kind = forced.pop()
                sit = Situation(world, rng.choice(templates[kind]), account, region, random.Random(f"{seed}:forced:{kind}"))
            elif roll < SHARE_SUCCESS + SHARE_OTHER:
                sit = situation("success", account, region, n * SHARE_SUCCESS, SUCCESSES_PER_SITUATION)
            else:
                kind = causes[bisect.bisect(cause_cum, rng.random() * cause_cum[-1])]
                weight = CAUSE_WEIGHTS.get(kind, 1) / cause_cum[-1]
                sit = situation(kind, account, region, n * share_fail * weight, FAILURES_PER_SITUATION)
            rec = sit.record(rng, when)
            label = sit.label
            if SHARE_SUCCESS <= roll < SHARE_SUCCESS + SHARE_OTHER:
                rec, label = _other_service(rng, rec), "other-service"
            lines.append(dumps(rec).encode())
            labels.append(label)
        stamp = _iso(start + 300).replace("-", "").replace(":", "")[:13] + "Z"
        files.append((f"{account}_CloudTrail_{region}_{stamp}_{rng.getrandbits(64):016X}.json.gz", first, len(lines)))
    return Corpus(lines, labels, files)


def _iso(t: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ------------------------------------------------------------------------------------------------
# Cached access
# ------------------------------------------------------------------------------------------------
def _cache_dir(n: int, seed: int, per_file: int) -> Path:
    return CACHE / f"seed{seed}-n{n}-f{per_file}-{digest()}"


def corpus(n: int, seed: int = 42, per_file: int = PER_FILE) -> Corpus:
    """The corpus, from the cache when this seed, N, file size and template set were generated before."""
    where = _cache_dir(n, seed, per_file)
    if (where / "done").exists():
        lines = (where / "records.jsonl").read_bytes().split(b"\n")
        meta = json.loads((where / "meta.json").read_text())
        return Corpus(lines, meta["labels"], [tuple(f) for f in meta["files"]])
    c = generate(n, seed, per_file)
    where.mkdir(parents=True, exist_ok=True)
    (where / "records.jsonl").write_bytes(b"\n".join(c.lines))
    (where / "meta.json").write_text(json.dumps({"labels": c.labels, "files": c.files}))
    (where / "done").write_text("")
    return c


def record_lines(n: int, seed: int = 42) -> list[bytes]:
    return corpus(n, seed).lines


def log_files(n: int, seed: int = 42, per_file: int = PER_FILE, limit: int | None = None) -> Path:
    """CloudTrail log files (``{"Records": [...]}``, gzip) of the corpus, cached next to it; the
    first ``limit`` files only when given (in a directory of their own)."""
    import gzip

    c = corpus(n, seed, per_file)
    files = c.files[:limit] if limit else c.files
    where = _cache_dir(n, seed, per_file) / (f"logs-first{limit}" if limit else "logs")
    if (where / "done").exists():
        return where
    where.mkdir(parents=True, exist_ok=True)
    for name, first, end in files:
        body = b'{"Records":[' + b",".join(c.lines[first:end]) + b"]}"
        (where / name).write_bytes(gzip.compress(body, compresslevel=6))
    (where / "done").write_text("")
    return where
