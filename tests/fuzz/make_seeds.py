#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are committed; this script says where they come from and rewrites
them when a grammar changes: valid and near-valid inputs of each grammar,
one file per input, named after what it shows. The signed token seeds use
the fixed HMAC secrets of fuzz_token.c and its fixed time (NOW), so they
verify inside the target. Run from anywhere: python3 tests/fuzz/make_seeds.py
"""
import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1700000000
SECRET_A = b"wsgw-fuzz-secret-A-0123456789abcdef"  # kid "hs1"
SECRET_B = b"wsgw-fuzz-secret-B-0123456789abcdef"  # no kid
SECRET_C = b"wsgw-fuzz-secret-C-0123456789abcdef"  # not in the keyring


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(obj):
    return json.dumps(obj, separators=(",", ":"))


# ------------------------------------------------------------ protocol

PROTOCOL = {
    "auth": '{"type":"auth","token":"eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}',
    "auth_id": '{"type":"auth","id":0,"token":"a.b.c"}',
    "auth_no_token": '{"type":"auth"}',
    "auth_empty_token": '{"type":"auth","token":""}',
    "auth_token_number": '{"type":"auth","token":42}',
    "subscribe": '{"type":"subscribe","id":1,"channel":"job:42"}',
    "subscribe_token": '{"type":"subscribe","id":1,"channel":"job:42","token":"x.y.z"}',
    "subscribe_since": '{"type":"subscribe","id":1,"channel":"job:42","since":{"offset":7,"epoch":"q3CkV0xZ9aLm2PbT"}}',
    "subscribe_since_negative": '{"type":"subscribe","channel":"job:42","since":{"offset":-1,"epoch":"E"}}',
    "subscribe_since_long_epoch": '{"type":"subscribe","channel":"job:42","since":{"offset":1,"epoch":"%s"}}' % ("e" * 65),
    "subscribe_since_scalar": '{"type":"subscribe","channel":"job:1","since":5}',
    "subscribe_no_colon": '{"type":"subscribe","channel":"nocolon"}',
    "subscribe_space": '{"type":"subscribe","channel":"job:4 2"}',
    "subscribe_long_channel": '{"type":"subscribe","channel":"ns:%s"}' % ("c" * 125),
    "subscribe_user": '{"type":"subscribe","id":9,"channel":"user:alice"}',
    "unsubscribe": '{"type":"unsubscribe","id":2,"channel":"job:42"}',
    "publish": '{"type":"publish","id":3,"channel":"chat:lobby","data":{"text":"hi","n":[1,2.5,true,null,"\\u00e9"]}}',
    "publish_null": '{"type":"publish","channel":"chat:x","data":null}',
    "publish_no_data": '{"type":"publish","channel":"chat:x"}',
    "publish_from": '{"type":"publish","channel":"chat:x","data":"s","from":"mallory"}',
    "publish_nested": '{"type":"publish","channel":"chat:x","data":' + "[" * 40 + "]" * 40 + "}",
    "refresh": '{"type":"refresh","id":4,"token":"x.y.z"}',
    "ping": '{"type":"ping","id":5}',
    "ping_big_id": '{"type":"ping","id":9223372036854775807}',
    "ping_neg_id": '{"type":"ping","id":-9223372036854775808}',
    "ping_float_id": '{"type":"ping","id":1.5}',
    "ping_string_id": '{"type":"ping","id":"7"}',
    "dup_type": '{"type":"ping","type":"auth"}',
    "unknown_type": '{"type":"dance","id":9}',
    "type_number": '{"type":5}',
    "empty_object": "{}",
    "array": '[{"type":"ping"}]',
    "scalar": '"ping"',
    "nul_escape": '{"type":"ping","x":"\\u0000"}',
    "bad_utf8": b'{"type":"\xff"}',
    "trailing": '{"type":"ping"} {}',
    "truncated": '{"type":"subscribe","channel":"job:',
    "whitespace": ' \t\r\n{ "type" : "ping" , "id" : 1 }\n',
}

# ------------------------------------------------------------ envelope

ENVELOPE = {
    "plain": '{"data":{"progress":40}}',
    "from": '{"data":{"text":"hi"},"from":"alice"}',
    "history": '{"data":{"state":"running"},"from":"backend","offset":7,"epoch":"q3CkV0xZ9aLm2PbT"}',
    "ts": '{"data":{"text":"hi"},"from":"alice","ts":1700000000123}',
    "ts_history": '{"data":1,"from":"alice","ts":1700000000123,"offset":8,"epoch":"E"}',
    "batch": '[{"data":{"state":"running","progress":40},"ts":1,"offset":7,"epoch":"E1"},'
    '{"data":"]}\\"{","offset":8,"epoch":"E1"}]',
    "batch_header": '[7,"q3CkV0xZ9aLm2PbT",{"data":{"state":"running","progress":40},"ts":1},'
    '{ },{"data":"]}\\"{","from":"bob"}]',
    "batch_header_blanks": ' [ 18 , "E" ,\n{"data":1} ] ',
    "batch_header_big_offset": '[123456789012345678,"E",{"data":1}]',
    "batch_header_overflow": '[9223372036854775807,"E",{"data":1}]',
    "batch_header_20_digits": '[92332720368547758077,"E",{"null"}',  # overflowed once
    "batch_header_bad_epoch": '[7,"E p",{"data":1}]',
    "batch_header_offset_inside": '[7,"E",{"data":1,"offset":3}]',
    "ts_negative": '{"data":1,"ts":-5}',
    "ts_string": '{"data":1,"ts":"1700000000123"}',
    "data_null": '{"data":null}',
    "data_scalar": '{"data":"text with \\"quotes\\" and \\\\ and \\u00e9"}',
    "data_array": '{"data":[1,-2,3.25e10,true,false,null,{}]}',
    "unknown_key": '{"data":1,"x-new":{"a":[1]}}',
    "empty_object": "{}",
    "blanks": ' \n{ "data" : 1 } \r\n',
    "no_data": '{"from":"alice"}',
    "from_bad": '{"data":1,"from":"al ice"}',
    "from_long": '{"data":1,"from":"%s"}' % ("a" * 129),
    "from_number": '{"data":1,"from":5}',
    "offset_negative": '{"data":1,"offset":-1,"epoch":"E"}',
    "offset_float": '{"data":1,"offset":1.0,"epoch":"E"}',
    "offset_max": '{"data":1,"offset":9223372036854775807,"epoch":"E"}',
    "epoch_long": '{"data":1,"offset":1,"epoch":"%s"}' % ("e" * 33),
    "epoch_empty": '{"data":1,"offset":1,"epoch":""}',
    "epoch_only": '{"data":1,"epoch":"E-_9"}',
    "dup_data": '{"data":1,"data":2}',
    "array": '[{"data":1}]',
    "scalar": "1",
    "trailing": '{"data":1}x',
    "nul": '{"data":"\\u0000"}',
    "bad_utf8": b'{"data":"\xc3\x28"}',
    "deep": '{"data":' + "[" * 64 + "]" * 64 + "}",
}

# ------------------------------------------------------------ token


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header, payload, key=SECRET_A, digest=hashlib.sha256, sig=None):
    h = header if isinstance(header, bytes) else header.encode()
    p = payload if isinstance(payload, bytes) else payload.encode()
    signing = b64(h) + "." + b64(p)
    if sig is None:
        sig = hmac.new(key, signing.encode(), digest).digest() if key else b""
    return signing + "." + b64(sig)


CLAIMS = {
    "sub": "alice",
    "exp": NOW + 600,
    "iat": NOW - 10,
    "iss": "https://issuer.example",
    "aud": "wsgw",
    "channels": ["job:*", "chat:lobby"],
    "publish": ["chat:*"],
    "channel": "job:42",
}


def claims(**over):
    c = dict(CLAIMS)
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return j(c)


HS_A = '{"alg":"HS256","typ":"JWT","kid":"hs1"}'
HS_B = '{"alg":"HS256","typ":"JWT"}'

# Raw tokens (mode byte '0'): the body is the token text.
TOKENS_RAW = {
    "valid_kid": raw_token(HS_A, claims()),
    "valid_nokid": raw_token(HS_B, claims(), key=SECRET_B),
    "valid_hs384": raw_token('{"alg":"HS384","kid":"hs1"}', claims(), digest=hashlib.sha384),
    "valid_hs512": raw_token('{"alg":"HS512"}', claims(), key=SECRET_B, digest=hashlib.sha512),
    "valid_minimal": raw_token(HS_A, j({"sub": "a", "exp": NOW})),
    "expired": raw_token(HS_A, claims(exp=NOW - 31)),
    "not_yet": raw_token(HS_A, claims(nbf=NOW + 31)),
    "no_exp": raw_token(HS_A, claims(exp=None)),
    "exp_string": raw_token(HS_A, claims(exp=str(NOW + 600))),
    "exp_float": raw_token(HS_A, claims(exp=NOW + 600.5)),
    "aud_array": raw_token(HS_A, claims(aud=["other", "wsgw"])),
    "aud_bad": raw_token(HS_A, claims(aud=[1])),
    "sub_bad": raw_token(HS_A, claims(sub="al ice")),
    "channels_bad": raw_token(HS_A, claims(channels=["job:*x"])),
    "publish_string": raw_token(HS_A, claims(publish="chat:*")),
    "wrong_secret": raw_token(HS_A, claims(), key=SECRET_C),
    "unknown_kid": raw_token('{"alg":"HS256","kid":"nope"}', claims()),
    "kid_number": raw_token('{"alg":"HS256","kid":1}', claims()),
    "alg_none": raw_token('{"alg":"none"}', claims(), key=None),
    "alg_lower": raw_token('{"alg":"hs256","kid":"hs1"}', claims()),
    "alg_confusion": raw_token('{"alg":"HS256","kid":"rsa1"}', claims()),
    "alg_rs_on_hs": raw_token('{"alg":"RS256","kid":"hs1"}', claims()),
    "crit": raw_token('{"alg":"HS256","kid":"hs1","crit":["exp"]}', claims()),
    "typ_bad": raw_token('{"alg":"HS256","kid":"hs1","typ":"JWS"}', claims()),
    "dup_header": raw_token('{"alg":"HS256","alg":"none"}', claims()),
    "dup_claim": raw_token(HS_A, '{"sub":"alice","exp":1,"exp":%d}' % (NOW + 600)),
    "header_array": raw_token("[1]", claims()),
    "payload_not_json": raw_token(HS_A, "not json"),
    "empty_sig": raw_token(HS_A, claims(), key=None),
    "two_parts": b64(HS_A.encode()) + "." + b64(claims().encode()),
    "four_parts": raw_token(HS_A, claims()) + ".x",
    "padding": raw_token(HS_A, claims()) + "==",
    "stray_bits": "eyJhbGciOiJIUzI1NiJ9.e31.c2ln",
    "len_mod4_1": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnA",
    "dots": "..",
    "empty": "",
    "too_long": "a" * 4000 + "." + "b" * 4000 + "." + "c" * 193,
}

# Signed modes: the body is "header\0payload" or just the payload.
SIGNED = {
    "claims": claims(),
    "claims_minimal": j({"sub": "a", "exp": NOW + 1}),
    "claims_no_sub": claims(sub=None),
    "claims_many": claims(channels=["ns:%d" % i for i in range(40)] + ["*"]),
    "claims_user_sub": claims(sub="x" * 128),
    "claims_nbf_iat": claims(nbf=NOW, iat=NOW + 30),
    "claims_exp_min": claims(exp=-9223372036854775808),
    "claims_exp_max": claims(exp=9223372036854775807),
    "claims_channel_number": claims(channel=42),
    "claims_array": "[]",
}
# Claims for the keyring with an issuer and an audience.
POLICY = {
    "aud_array": claims(aud=["other", "wsgw"]),
    "aud_number": claims(aud=5),
    "aud_missing": claims(aud=None),
    "iss_wrong": claims(iss="https://other.example"),
    "iss_missing": claims(iss=None),
    "exp_now": claims(exp=NOW),
}
HEADERS = {
    "hdr_kid_hs1": '{"alg":"HS256","kid":"hs1"}',
    "hdr_hs512": '{"alg":"HS512","typ":"jwt"}',
    "hdr_rs256": '{"alg":"RS256","kid":"rsa1"}',
    "hdr_es256": '{"alg":"ES256","kid":"ec1"}',
    "hdr_es384": '{"alg":"ES384"}',
    "hdr_none": '{"alg":"none"}',
    "hdr_kid_ec_hs": '{"alg":"HS256","kid":"ec1"}',
}


def selector(mode, variant, policy):
    """The first byte of a fuzz_token input: mode in bits 0-1, variant in
    bits 2-3, the policy keyring in bit 4; printable (0x20..0x3f)."""
    return chr(0x20 + 16 * policy + 4 * variant + mode)


def token_seeds():
    for name, tok in TOKENS_RAW.items():
        write("token", "raw_" + name, selector(0, 0, 0) + tok)
        write("token", "raw_" + name + "_policy", selector(0, 0, 1) + tok)
    for variant in range(4):
        for mode, label in ((1, "signed"), (2, "forged"), (3, "asym")):
            write("token", "%s%d_claims_policy" % (label, variant),
                  selector(mode, variant, 1) + SIGNED["claims"])
            if mode == 1 and variant == 0:
                for name, body in POLICY.items():
                    write("token", "signed0_%s_policy" % name, selector(1, 0, 1) + body)
            for name, body in SIGNED.items():
                if name == "claims" or variant == 0:
                    write("token", "%s%d_%s" % (label, variant, name),
                          selector(mode, variant, 0) + body)
            for name, hdr in HEADERS.items():
                if variant == 0 or name in ("hdr_rs256", "hdr_es256"):
                    write("token", "%s%d_%s" % (label, variant, name),
                          selector(mode, variant, 0) + hdr + "\0" + claims())


def main():
    for name, text in PROTOCOL.items():
        write("protocol", name, text)
    for name, text in ENVELOPE.items():
        write("envelope", name, text)
    token_seeds()


if __name__ == "__main__":
    main()
