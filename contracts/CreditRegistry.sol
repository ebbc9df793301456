// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {ICreditRegistry} from "./interfaces/ICreditRegistry.sol";
import {BatchCall} from "./utils/BatchCall.sol";

/// @title CreditRegistry
/// @notice Signed credit records, their revocation and repair, and platforms' enforcement receipts. See
/// {ICreditRegistry}. Storage per record is kept to what other contracts read: a red-list or blacklist record
/// takes one window (times, list, issuer tag) in its subject's words (two per slot); every signed message takes
/// its nonce's 32-bit place in its organisation's table (eight per slot), holding a fingerprint of the message id,
/// so the contract can tell the message that used a nonce from a twin that merely shares it.
/// @dev Gas. Relayers submit records a hundred at a time through {batch}, so the per-record path (`issue`) is
/// written to do little besides what it must pay for: the calldata, the ecrecover precompile, the nonce's place,
/// the list window and the `RecordIssued` log. To that end:
/// - struct hashes are computed in assembly straight from calldata (one `calldatacopy` of the struct head, the
///   string replaced by its hash) instead of through `abi.encode` and `bytes.concat` copies;
/// - `RecordIssued` is logged from one buffer laid out in assembly, byte for byte what `emit` would encode;
/// - signature recovery and the Consortium lookup are plain `staticcall`s, with the checks and errors of
///   OpenZeppelin's `ECDSA.tryRecoverCalldata` and of Solidity's call and ABI decoding kept;
/// - within a batch, the standing of a signer is fetched from the Consortium once and then read from transient
///   storage (see {_signerStanding});
/// - mapping slots are hashed once for a read and its write, and a window word's lanes are scanned without
///   re-reading storage;
/// - the kind's required roles and list flag are looked up in constant tables.
/// Profile of a batch of 100 penalty records, per record: calldata ~5,480, `RecordIssued` log 6,227, ecrecover
/// ~3,100, the nonce's place ~3,050 (a fresh slot every eight nonces), the rest ~4,350 (batch loop, dispatch and
/// ABI decoding, hashing, checks, standing cache).
/// Storage layout, errors, events and their order are those of the plain Solidity version.
contract CreditRegistry is ICreditRegistry, EIP712, BatchCall {
    uint8 private constant _REGULATOR = 1;
    uint8 private constant _PLATFORM = 2;
    uint8 private constant _CERTIFIER = 16;
    uint8 private constant _PAYMENT = 32;
    uint8 private constant _KIND_COUNT = 12;
    uint8 private constant _RELATION_COUNT = 4;
    uint8 private constant _CLOSED_REVOKED = 1;
    uint8 private constant _CLOSED_REPAIRED = 2;

    bytes32 private constant _RECORD_TYPEHASH = keccak256(
        "CreditRecord(uint8 kind,bytes32 subject,bytes32 issuer,string legalBasis,uint8 tier,uint32 measures,"
        "bytes32 documentHash,uint64 effectiveAt,uint64 publicUntil,uint64 validUntil,uint8 relation,"
        "bytes32 refersTo,uint256 nonce)"
    );
    bytes32 private constant _REVOCATION_TYPEHASH =
        keccak256("Revocation(bytes32 recordId,bytes32 issuer,string reason,uint256 nonce)");
    bytes32 private constant _REPAIR_TYPEHASH =
        keccak256("Repair(bytes32 recordId,bytes32 issuer,string reason,uint256 nonce)");
    bytes32 private constant _ENFORCEMENT_TYPEHASH = keccak256(
        "Enforcement(bytes32 platform,bytes32 subject,bytes32 recordId,uint16 measure,uint64 appliedAt,uint256 nonce)"
    );

    /// @dev {_requiredRoles}: byte k is the roles kind k requires (see the table there).
    uint256 private constant _REQUIRED_ROLES = uint256(_REGULATOR | _PAYMENT) << 88 | uint256(_CERTIFIER) << 80
        | uint256(_REGULATOR | _PLATFORM) << 72 | uint256(_REGULATOR) << 64 | uint256(_REGULATOR) << 56
        | uint256(_REGULATOR) << 48 | uint256(_REGULATOR) << 40 | uint256(_REGULATOR) << 32 | uint256(_REGULATOR) << 24
        | uint256(_REGULATOR) << 16 | uint256(_REGULATOR) << 8 | uint256(_REGULATOR | _PLATFORM);
    /// @dev {_isListKind}: bit k is set for the list kinds.
    uint256 private constant _LIST_KINDS = 1 << uint8(Kind.RED_LIST) | 1 << uint8(Kind.BLACKLIST);

    // A list window: from (40 bits) | until (40 bits) << 40 | blacklist flag << 80 | issuer tag (40 bits) << 81,
    // in a 128-bit lane, two per word. The issuer tag (low 40 bits of the issuing organisation's id) means a
    // closure can only ever remove a window its own organisation put there.
    uint256 private constant _LANE = 128;
    uint256 private constant _ENTRY_MASK = (1 << 121) - 1;
    uint256 private constant _TIME_MASK = (1 << 40) - 1;
    uint256 private constant _BLACK = 1 << 80;
    uint256 private constant _DEAD = 1 << 40; // until = 1: free for reuse, never listed
    // A nonce's place: 32 bits, eight per word; zero if unused, else the fingerprint of the message that used it.
    uint256 private constant _PRINT_MASK = 0xffffffff;

    /// @dev secp256k1n / 2: OpenZeppelin's ECDSA rejects a larger `s` (malleable signature).
    uint256 private constant _HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @dev Transient slots of the standing cache: `_CACHE_BASE ^ signer` holds the signer's organisation,
    /// `_CACHE_BASE ^ 1 << 160 ^ signer` holds `scope << 8 | roles`. The base's low 161 bits are zero, so no two
    /// signers (and no signer's two slots) share a slot, and none is slot 0 or 1 of the transient variables.
    uint256 private constant _CACHE_BASE = uint256(keccak256("credtrace.CreditRegistry.standingCache")) >> 161 << 161;

    IConsortium private immutable _consortium;
    mapping(bytes32 subject => mapping(uint256 index => uint256 entries)) private _windows;
    mapping(bytes32 issuer => mapping(uint256 word => uint256 prints)) private _nonces;
    mapping(bytes32 id => uint8 closed) private _closed;

    /// @dev Cache scope of the batch running now (0: none, standings are not cached), and the last scope opened
    /// in this transaction (scopes are never reused, so an entry of an earlier batch never matches).
    uint256 private transient _standingScope;
    uint256 private transient _lastStandingScope;

    /// @param consortium_ The Consortium whose members and keys may sign.
    constructor(IConsortium consortium_) EIP712("credtrace CreditRegistry", "1") {
        _consortium = consortium_;
    }

    /// @inheritdoc ICreditRegistry
    function issue(CreditRecord calldata record, bytes calldata signature) external {
        uint8 kind = _checkShape(record);
        string calldata legalBasis = _legalBasis(record);
        bytes32 id = _hashTypedDataV4(_hashRecordHead(record, legalBasis));
        (address signer, uint8 roles) = _standing(id, signature, record.issuer);
        uint8 required = _requiredRoles(kind);
        if (roles & required == 0) revert RoleNotAllowed(signer, kind, required);
        _useNonce(record.issuer, record.nonce, id);
        if (_isListKind(kind)) {
            _addWindow(record.subject, _entry(record));
        }
        _emitRecordIssued(id, signer, record, legalBasis);
    }

    /// @inheritdoc ICreditRegistry
    function revoke(CreditRecord calldata record, Closure calldata closure, bytes calldata signature) external {
        (bytes32 id, bytes32 closureId, address signer) = _close(record, closure, signature, false);
        emit RecordRevoked(id, closureId, closure.issuer, signer, closure.reason);
    }

    /// @inheritdoc ICreditRegistry
    function repair(CreditRecord calldata record, Closure calldata closure, bytes calldata signature) external {
        (bytes32 id, bytes32 closureId, address signer) = _close(record, closure, signature, true);
        emit RecordRepaired(id, closureId, closure.issuer, signer, closure.reason);
    }

    /// @inheritdoc ICreditRegistry
    function enforce(Enforcement calldata e, bytes calldata signature) external {
        bytes32 id = _hashTypedDataV4(_enforcementHash(e));
        (address signer, uint8 roles) = _standing(id, signature, e.platform);
        if (roles & _PLATFORM == 0) revert NotPlatform(signer);
        _useNonce(e.platform, e.nonce, id);
        emit EnforcementFiled(id, e.platform, e.subject, e.recordId, e.measure, e.appliedAt, signer);
    }

    /// @inheritdoc BatchCall
    /// @dev Runs the calls in a fresh scope of the standing cache (see {_signerStanding}) and restores the
    /// enclosing scope afterwards (0 outside any batch; a nested batch only costs the outer one its cache).
    function batch(bytes[] calldata calls) public override returns (bool[] memory ok) {
        uint256 outer = _standingScope;
        uint256 scope = _lastStandingScope + 1;
        _lastStandingScope = scope;
        _standingScope = scope;
        ok = super.batch(calls);
        _standingScope = outer;
    }

    /// @inheritdoc ICreditRegistry
    function isRedListed(bytes32 subject) external view returns (bool) {
        return _listed(subject, 0);
    }

    /// @inheritdoc ICreditRegistry
    function isBlacklisted(bytes32 subject) external view returns (bool) {
        return _listed(subject, _BLACK);
    }

    /// @inheritdoc ICreditRegistry
    function recordState(CreditRecord calldata record) external view returns (RecordState) {
        return _state(_hashTypedDataV4(_structHash(record)), record);
    }

    /// @inheritdoc ICreditRegistry
    function nonceUsed(bytes32 issuer, uint256 nonce) public view returns (bool) {
        return _printAt(issuer, nonce) != 0;
    }

    /// @inheritdoc ICreditRegistry
    function hashRecord(CreditRecord calldata record) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(record));
    }

    /// @inheritdoc ICreditRegistry
    function hashClosure(Closure calldata closure, bool isRepair) external view returns (bytes32) {
        return _hashTypedDataV4(_closureHash(closure, isRepair));
    }

    /// @inheritdoc ICreditRegistry
    function hashEnforcement(Enforcement calldata e) external view returns (bytes32) {
        return _hashTypedDataV4(_enforcementHash(e));
    }

    /// @inheritdoc ICreditRegistry
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The Consortium this registry trusts for members, roles and keys.
    function consortium() external view returns (IConsortium) {
        return _consortium;
    }

    // writes

    function _close(CreditRecord calldata record, Closure calldata closure, bytes calldata signature, bool isRepair)
        private
        returns (bytes32 id, bytes32 closureId, address signer)
    {
        id = _hashTypedDataV4(_structHash(record));
        if (closure.recordId != id) revert RecordMismatch(closure.recordId, id);
        closureId = _hashTypedDataV4(_closureHash(closure, isRepair));
        uint8 roles;
        (signer, roles) = _standing(closureId, signature, closure.issuer);
        if (closure.issuer != record.issuer) revert NotIssuingOrganisation(closure.issuer, record.issuer);
        uint8 allowed = _requiredRoles(record.kind) | _REGULATOR;
        if (roles & allowed == 0) revert RoleNotAllowed(signer, record.kind, allowed);
        RecordState state = _state(id, record);
        if (state == RecordState.UNKNOWN) revert RecordNotFound(id);
        bool open = isRepair ? state == RecordState.ACTIVE : (state == RecordState.ACTIVE || state == RecordState.NOTICE);
        if (!open) revert RecordNotActive(id, state);
        _useNonce(closure.issuer, closure.nonce, closureId);
        _closed[id] = isRepair ? _CLOSED_REPAIRED : _CLOSED_REVOKED;
        if (_isListKind(record.kind)) {
            _closeWindow(record.subject, _entry(record));
        }
    }

    /// @dev Take the nonce's place for message `id`: its fingerprint proves later which message used the nonce.
    /// The word's slot is hashed once for the read and the write.
    function _useNonce(bytes32 issuer, uint256 nonce, bytes32 id) private {
        uint256 slot = _nonceSlot(issuer, nonce);
        uint256 shift = (nonce & 7) << 5;
        uint256 word = _sload(slot);
        if ((word >> shift) & _PRINT_MASK != 0) revert NonceUsed(issuer, nonce);
        word |= _fingerprint(id) << shift;
        assembly ("memory-safe") {
            sstore(slot, word)
        }
    }

    /// @dev Put a window in the first free place: an empty entry, or one whose window has ended (expired or dead).
    /// An empty entry has `until` 0, which is never after now, so one test (`until <= now`) finds both.
    function _addWindow(bytes32 subject, uint256 entry) private {
        uint256 words = _windowsOf(subject);
        for (uint256 w; ; ) {
            uint256 slot = _wordSlot(words, w);
            uint256 word = _sload(slot);
            for (uint256 shift; shift < 256; shift += _LANE) {
                if ((word >> (shift + 40)) & _TIME_MASK <= block.timestamp) {
                    word = (word & ~(_ENTRY_MASK << shift)) | (entry << shift);
                    assembly ("memory-safe") {
                        sstore(slot, word)
                    }
                    return;
                }
            }
            unchecked {
                ++w;
            }
        }
    }

    /// @dev Mark the window of a closed record dead (never zero, so the words stay contiguous).
    function _closeWindow(bytes32 subject, uint256 entry) private {
        uint256 words = _windowsOf(subject);
        for (uint256 w; ; ) {
            uint256 slot = _wordSlot(words, w);
            uint256 word = _sload(slot);
            if (word == 0) return;
            for (uint256 shift; shift < 256; shift += _LANE) {
                if ((word >> shift) & _ENTRY_MASK == entry) {
                    word = (word & ~(_ENTRY_MASK << shift)) | (_DEAD << shift);
                    assembly ("memory-safe") {
                        sstore(slot, word)
                    }
                    return;
                }
            }
            unchecked {
                ++w;
            }
        }
    }

    /// @dev `emit RecordIssued(id, record.subject, record.issuer, signer, record)`, laid out by hand: Solidity
    /// would re-validate every field and copy the struct piecewise. The data is abi.encode(signer, record):
    ///   0x000 signer | 0x020 0x40 (offset of the record) | 0x040 the 13 head words of the record, as in calldata,
    ///   except legalBasis's, 0x0a0, which becomes 0x1a0 (its offset within the record) | 0x1e0 its length |
    ///   0x200 its bytes, zero-padded to a whole word.
    /// The head words are clean: {_checkShape} validated every field of a small type.
    function _emitRecordIssued(bytes32 id, address signer, CreditRecord calldata r, string calldata legalBasis)
        private
    {
        bytes32 topic = RecordIssued.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, signer)
            mstore(add(m, 0x20), 0x40)
            calldatacopy(add(m, 0x40), r, 0x1a0)
            mstore(add(m, 0xa0), 0x1a0)
            let length := legalBasis.length
            mstore(add(m, 0x1e0), length)
            mstore(add(add(m, 0x200), and(length, not(31))), 0) // the padding of the last word
            calldatacopy(add(m, 0x200), legalBasis.offset, length)
            let size := add(0x200, and(add(length, 31), not(31)))
            log4(m, size, topic, id, calldataload(add(r, 0x20)), calldataload(add(r, 0x40)))
        }
    }

    // reads

    function _listed(bytes32 subject, uint256 flag) private view returns (bool) {
        uint256 words = _windowsOf(subject);
        for (uint256 w; ; ) {
            uint256 word = _sload(_wordSlot(words, w));
            if (word == 0) return false;
            for (uint256 shift; shift < 256; shift += _LANE) {
                uint256 e = (word >> shift) & _ENTRY_MASK;
                if (
                    e & _BLACK == flag && (e & _TIME_MASK) <= block.timestamp
                        && ((e >> 40) & _TIME_MASK) > block.timestamp
                ) return true;
            }
            unchecked {
                ++w;
            }
        }
    }

    function _state(bytes32 id, CreditRecord calldata record) private view returns (RecordState) {
        if (_printAt(record.issuer, record.nonce) != _fingerprint(id)) return RecordState.UNKNOWN;
        uint8 closed = _closed[id];
        if (closed == _CLOSED_REVOKED) return RecordState.REVOKED;
        if (closed == _CLOSED_REPAIRED) return RecordState.REPAIRED;
        if (block.timestamp < record.effectiveAt) return RecordState.NOTICE;
        if (block.timestamp >= record.validUntil) return RecordState.EXPIRED;
        return RecordState.ACTIVE;
    }

    function _printAt(bytes32 issuer, uint256 nonce) private view returns (uint256) {
        return (_sload(_nonceSlot(issuer, nonce)) >> ((nonce & 7) << 5)) & _PRINT_MASK;
    }

    /// @dev 32 bits of a message id, never zero (zero marks an unused nonce).
    function _fingerprint(bytes32 id) private pure returns (uint256 print) {
        print = uint256(id) & _PRINT_MASK;
        if (print == 0) print = 1;
    }

    /// @dev The signer of `digest` and its organisation's roles; reverts unless it is an active key of an Active
    /// member signing for `claimed`.
    function _standing(bytes32 digest, bytes calldata signature, bytes32 claimed)
        private
        returns (address signer, uint8 roles)
    {
        signer = _recover(digest, signature);
        bytes32 organisation;
        (organisation, roles) = _signerStanding(signer);
        if (roles == 0) revert NotActiveSigner(signer);
        if (organisation != claimed) revert IssuerMismatch(claimed, organisation);
    }

    /// @dev OpenZeppelin's `ECDSA.tryRecoverCalldata`, every error reported as {InvalidSignature}: the signature
    /// must be 65 bytes (r, s, v), `s` at most half the curve order, and the precompile must return an address
    /// (it returns nothing for a bad `v` or a point off the curve).
    function _recover(bytes32 digest, bytes calldata signature) private view returns (address signer) {
        assembly ("memory-safe") {
            if eq(signature.length, 65) {
                let s := calldataload(add(signature.offset, 0x20))
                if iszero(gt(s, _HALF_ORDER)) {
                    let m := mload(0x40)
                    mstore(m, digest)
                    mstore(add(m, 0x20), byte(0, calldataload(add(signature.offset, 0x40)))) // v
                    mstore(add(m, 0x40), calldataload(signature.offset)) // r
                    mstore(add(m, 0x60), s)
                    if iszero(staticcall(gas(), 1, m, 0x80, 0, 0x20)) { revert(0, 0) }
                    signer := mul(mload(0), eq(returndatasize(), 0x20))
                }
            }
        }
        if (signer == address(0)) revert InvalidSignature();
    }

    /// @dev `_consortium.signerStanding(signer)`, cached within a batch. The Consortium's state cannot change
    /// while a batch runs: the batch only delegatecalls this contract, which calls the Consortium only through
    /// this view (a `staticcall`), so one lookup per signer and batch gives the same answers as one per call.
    /// Entries are tagged with the batch's scope, which {batch} opens and closes, so a write that changes a key or
    /// a member between two batches of one transaction, or before a lone call, is always seen. Outside a batch
    /// nothing is cached. A miss costs two `tstore`s more; a hit saves the call (~1,200 gas).
    function _signerStanding(address signer) private returns (bytes32 organisation, uint8 roles) {
        uint256 scope = _standingScope;
        uint256 orgSlot = _CACHE_BASE ^ uint256(uint160(signer));
        uint256 tagSlot = orgSlot ^ (1 << 160);
        if (scope != 0) {
            uint256 tag;
            assembly ("memory-safe") {
                tag := tload(tagSlot)
            }
            if (tag >> 8 == scope) {
                assembly ("memory-safe") {
                    organisation := tload(orgSlot)
                }
                return (organisation, uint8(tag));
            }
        }
        // The high-level call, by hand: revert data is bubbled up, short or ill-typed answers revert empty.
        IConsortium consortium_ = _consortium;
        bytes4 selector = IConsortium.signerStanding.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 0x04), signer)
            if iszero(staticcall(gas(), consortium_, m, 0x24, 0, 0x40)) {
                returndatacopy(m, 0, returndatasize())
                revert(m, returndatasize())
            }
            if lt(returndatasize(), 0x40) { revert(0, 0) }
            organisation := mload(0)
            roles := mload(0x20)
            if gt(roles, 0xff) { revert(0, 0) }
            if scope {
                tstore(orgSlot, organisation)
                tstore(tagSlot, or(shl(8, scope), roles))
            }
        }
    }

    /// @dev The record's own rules, and the cleanliness of its fields of small types, checked in the order the
    /// plain Solidity version checked them (its calldata accessors revert with no data on a field that does not
    /// fit its type, as {_malformed} does): kind, tier, subject, the three times (all three are read before either
    /// window error), relation and reference, then `measures` (first read when the record was hashed). The words
    /// are read once, with `calldataload`, instead of through an accessor per use.
    /// @return kind The record's kind.
    function _checkShape(CreditRecord calldata r) private pure returns (uint8 kind) {
        uint256 k;
        uint256 tier;
        uint256 effectiveAt;
        uint256 publicUntil;
        uint256 validUntil;
        uint256 relation;
        uint256 measures;
        assembly ("memory-safe") {
            k := calldataload(r)
            tier := calldataload(add(r, 0x80))
            measures := calldataload(add(r, 0xa0))
            effectiveAt := calldataload(add(r, 0xe0))
            publicUntil := calldataload(add(r, 0x100))
            validUntil := calldataload(add(r, 0x120))
            relation := calldataload(add(r, 0x140))
        }
        if (k > type(uint8).max) _malformed();
        if (k >= _KIND_COUNT) revert InvalidKind(uint8(k));
        if (tier > type(uint8).max) _malformed();
        if (tier > 2) revert InvalidTier(uint8(tier));
        if (r.subject == bytes32(0)) revert InvalidSubject();
        if (effectiveAt | publicUntil | validUntil > type(uint64).max) _malformed();
        if (validUntil <= effectiveAt || publicUntil < effectiveAt) {
            revert InvalidWindow(uint64(effectiveAt), uint64(publicUntil), uint64(validUntil));
        }
        if (relation > type(uint8).max) _malformed();
        bytes32 refersTo = r.refersTo;
        if (relation >= _RELATION_COUNT || (relation == 0) != (refersTo == bytes32(0))) {
            revert InvalidReference(uint8(relation), refersTo);
        }
        if (measures > type(uint32).max) _malformed();
        return uint8(k);
    }

    /// @dev Revert with no data: what Solidity's calldata accessors do for a field that does not fit its type.
    function _malformed() private pure {
        assembly ("memory-safe") {
            revert(0, 0)
        }
    }

    /// @dev `r.legalBasis`, with the checks of Solidity's accessor (the offset and the length must be sane and
    /// the bytes within calldata; it reverts with no data otherwise), for a third of its gas.
    function _legalBasis(CreditRecord calldata r) private pure returns (string calldata legalBasis) {
        assembly ("memory-safe") {
            let rel := calldataload(add(r, 0x60))
            if iszero(slt(rel, sub(sub(calldatasize(), r), 0x1f))) { revert(0, 0) }
            let at := add(r, rel)
            legalBasis.length := calldataload(at)
            if gt(legalBasis.length, 0xffffffffffffffff) { revert(0, 0) }
            legalBasis.offset := add(at, 0x20)
            if sgt(legalBasis.offset, sub(calldatasize(), legalBasis.length)) { revert(0, 0) }
        }
    }

    /// @dev The roles a kind requires, from a table of one byte per kind (kind 0 in the lowest byte): decisions
    /// need a REGULATOR; COMMITMENT (0) and LOGISTICS_EVALUATION (9) a REGULATOR or PLATFORM;
    /// REAL_NAME_CERTIFICATION (10) a CERTIFIER; PAYMENT_VIOLATION (11) a PAYMENT member or a REGULATOR. A kind
    /// past the table ({_close} may see one: its record was not shape-checked) is a decision, as before.
    function _requiredRoles(uint8 kind) private pure returns (uint8) {
        if (kind >= _KIND_COUNT) return _REGULATOR;
        return uint8(_REQUIRED_ROLES >> (uint256(kind) << 3));
    }

    /// @dev Whether records of `kind` put their subject on a list (RED_LIST, BLACKLIST): one bit per kind.
    function _isListKind(uint8 kind) private pure returns (bool) {
        return (_LIST_KINDS >> kind) & 1 != 0;
    }

    /// @dev The list window of a record whose fields were validated ({_checkShape} or {_structHash}), so its
    /// words are read directly.
    function _entry(CreditRecord calldata r) private pure returns (uint256) {
        uint256 kind;
        uint256 from;
        uint256 until;
        assembly ("memory-safe") {
            kind := calldataload(r)
            from := calldataload(add(r, 0xe0))
            until := calldataload(add(r, 0x120))
        }
        if (from > _TIME_MASK) from = _TIME_MASK;
        if (until > _TIME_MASK) until = _TIME_MASK;
        uint256 tag = uint256(r.issuer) & _TIME_MASK; // 40 bits, like the times
        return from | (until << 40) | (kind == uint8(Kind.BLACKLIST) ? _BLACK : 0) | (tag << 81);
    }

    // hashing (EIP-712 hashStruct, from calldata)

    /// @dev hashStruct(record), for a record whose fields were not checked: every field of a small type must
    /// be clean, as Solidity's accessors require (they revert with no data otherwise).
    function _structHash(CreditRecord calldata r) private pure returns (bytes32) {
        string calldata legalBasis = _legalBasis(r);
        uint256 dirty;
        assembly ("memory-safe") {
            dirty := or(shr(8, or(calldataload(r), or(calldataload(add(r, 0x80)), calldataload(add(r, 0x140))))),
                or(shr(32, calldataload(add(r, 0xa0))), // measures
                   shr(64, or(calldataload(add(r, 0xe0)), or(calldataload(add(r, 0x100)), calldataload(add(r, 0x120)))))))
        }
        if (dirty != 0) _malformed();
        return _hashRecordHead(r, legalBasis);
    }

    /// @dev hashStruct(record) = keccak256(typehash ‖ the 13 fields as words, legalBasis as its keccak256). The
    /// struct's head in calldata is those 13 words already (legalBasis's being its offset), so it is copied whole
    /// and that one word replaced. The caller has checked the fields.
    function _hashRecordHead(CreditRecord calldata r, string calldata legalBasis) private pure returns (bytes32 h) {
        bytes32 typehash = _RECORD_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, legalBasis.offset, legalBasis.length)
            let basisHash := keccak256(m, legalBasis.length)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), r, 0x1a0)
            mstore(add(m, 0x80), basisHash)
            h := keccak256(m, 0x1c0)
        }
    }

    /// @dev hashStruct(closure): typehash ‖ recordId ‖ issuer ‖ keccak256(reason) ‖ nonce, as for a record.
    function _closureHash(Closure calldata c, bool isRepair) private pure returns (bytes32 h) {
        string calldata reason = c.reason;
        bytes32 typehash = isRepair ? _REPAIR_TYPEHASH : _REVOCATION_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, reason.offset, reason.length)
            let reasonHash := keccak256(m, reason.length)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), c, 0x80)
            mstore(add(m, 0x60), reasonHash)
            h := keccak256(m, 0xa0)
        }
    }

    /// @dev hashStruct(enforcement): typehash ‖ its six words, copied from calldata (measure and appliedAt must
    /// be clean).
    function _enforcementHash(Enforcement calldata e) private pure returns (bytes32 h) {
        bytes32 typehash = _ENFORCEMENT_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), e, 0xc0)
            if or(shr(16, mload(add(m, 0x80))), shr(64, mload(add(m, 0xa0)))) { revert(0, 0) }
            h := keccak256(m, 0xe0)
        }
    }

    // storage slots (Solidity's mapping layout: the slot of m[k] is keccak256(k ‖ slot of m))

    /// @dev The slot of `_nonces[issuer][nonce >> 3]`, the word holding the nonce's place.
    function _nonceSlot(bytes32 issuer, uint256 nonce) private pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0, issuer)
            mstore(0x20, _nonces.slot)
            mstore(0x20, keccak256(0, 0x40))
            mstore(0, shr(3, nonce))
            slot := keccak256(0, 0x40)
        }
    }

    /// @dev The slot of the mapping `_windows[subject]`; {_wordSlot} gives that of its word `w`.
    function _windowsOf(bytes32 subject) private pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0, subject)
            mstore(0x20, _windows.slot)
            slot := keccak256(0, 0x40)
        }
    }

    function _wordSlot(uint256 words, uint256 w) private pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0, w)
            mstore(0x20, words)
            slot := keccak256(0, 0x40)
        }
    }

    function _sload(uint256 slot) private view returns (uint256 value) {
        assembly ("memory-safe") {
            value := sload(slot)
        }
    }
}
