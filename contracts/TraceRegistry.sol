// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {ITraceRegistry} from "./interfaces/ITraceRegistry.sol";
import {BatchCall} from "./utils/BatchCall.sol";
import {MemberSigned} from "./utils/MemberSigned.sol";

/// @title TraceRegistry
/// @notice Code batches committed by producers and the append-only chain of anchored checkpoint batch roots. See
/// {ITraceRegistry}. Volume stays off chain: a lot of 100,000 codes is one commit, a batch of thousands of signed
/// checkpoint events is one anchor.
/// @dev Storage: one flag per committed code batch (commits are rare), and for the anchors only the last root and
/// the count: the history of roots is in the `BatchAnchored` events, each naming its predecessor, so the chain of
/// anchors can be verified from the logs and extended here only at its head. Gas of an anchor is therefore constant
/// in the batch size: the signed message is static (six words, hashed straight from calldata), the signer is
/// recovered with the ecrecover precompile and looked up with one `staticcall` to the Consortium, and two storage
/// words change. Measured (solc 0.8.28, 200 runs; anvil and py-evm agree): the first anchor ~85.9k gas (two fresh
/// words), every later one ~52.2k, whatever its size: 52 gas per event at 1,000 events, under 50 from ~1,050, ~5 at
/// 10,000. Nearly all of it is fixed: 21,000 intrinsic, ~3,200 calldata, 10,000 for the two words (cold read and
/// rewrite each), ~9,700 for the Consortium lookup (a cold account and three cold slots), 3,000 ecrecover, ~2,700
/// the log. Anchors sent together through {batch} share the intrinsic and cold costs: two cost ~68.3k.
/// Sizes stay below 2^48 and times below 2^40, so every index can hold them in a signed 64-bit integer.
contract TraceRegistry is ITraceRegistry, MemberSigned, BatchCall {
    uint8 private constant _REGULATOR = 1;
    uint8 private constant _PRODUCER = 8;
    uint256 private constant _MAX_SIZE = 2 ** 48 - 1;
    uint256 private constant _MAX_TIME = 2 ** 40 - 1;
    /// @dev Bit c is set for each allowed byte c: ASCII digits (GTIN), and for lots the GS1 AI encodable set 82
    /// without '/': `!`, `"`, `%` to `?` except `/`, `A` to `Z`, `_`, `a` to `z`.
    uint256 private constant _DIGITS = (1 << 0x3a) - (1 << 0x30);
    uint256 private constant _LOT_CHARS = (1 << 0x21) | (1 << 0x22) | ((1 << 0x40) - (1 << 0x25)) ^ (1 << 0x2f)
        | ((1 << 0x5b) - (1 << 0x41)) | (1 << 0x5f) | ((1 << 0x7b) - (1 << 0x61));

    bytes32 private constant _CODE_BATCH_TYPEHASH =
        keccak256("CodeBatch(bytes32 producer,string gtin,string lot,uint32 count,bytes32 root,uint256 nonce)");
    bytes32 private constant _ANCHOR_TYPEHASH = keccak256(
        "Anchor(uint64 index,bytes32 root,uint64 size,bytes32 previousRoot,uint64 firstTime,uint64 lastTime)"
    );

    bytes32 private _lastRoot;
    uint64 private _anchoredCount;
    mapping(bytes32 id => bool committed) private _committed;

    /// @param consortium_ The Consortium whose members and keys may sign.
    constructor(IConsortium consortium_) MemberSigned(consortium_, "credtrace TraceRegistry") {}

    /// @inheritdoc ITraceRegistry
    function commitCodes(CodeBatch calldata batch_, bytes calldata signature) external {
        uint32 count = batch_.count;
        bytes32 root = batch_.root;
        if (count == 0) revert EmptyBatch();
        if (root == bytes32(0)) revert ZeroRoot();
        _checkGtin(batch_.gtin);
        _checkLot(batch_.lot);
        bytes32 id = _hashTypedDataV4(_codeBatchHash(batch_));
        if (_committed[id]) revert AlreadyCommitted(id);
        (address signer, bytes32 organisation, uint8 roles) = _standing(id, signature);
        if (organisation != batch_.producer) revert ProducerMismatch(batch_.producer, organisation);
        if (roles & _PRODUCER == 0) revert NotProducer(signer);
        _committed[id] = true;
        emit CodesCommitted(id, batch_.producer, batch_.gtin, batch_.lot, count, root, signer);
    }

    /// @inheritdoc ITraceRegistry
    /// @dev Checks in this order: the anchor's own fields (size, root, time range), its place in the chain (index,
    /// previous root), then the signer. A resent anchor that already landed thus fails with {WrongIndex}.
    function anchor(Anchor calldata a, bytes calldata signature) external {
        bytes32 h = _anchorHash(a); // reverts without data on a field that does not fit its type
        uint256 index;
        uint256 size;
        uint256 firstTime;
        uint256 lastTime;
        bytes32 root;
        bytes32 previousRoot;
        assembly ("memory-safe") {
            index := calldataload(a)
            root := calldataload(add(a, 0x20))
            size := calldataload(add(a, 0x40))
            previousRoot := calldataload(add(a, 0x60))
            firstTime := calldataload(add(a, 0x80))
            lastTime := calldataload(add(a, 0xa0))
        }
        if (size == 0 || size > _MAX_SIZE) revert InvalidSize(uint64(size));
        if (root == bytes32(0)) revert ZeroRoot();
        if (firstTime > lastTime || lastTime > _MAX_TIME) {
            revert InvalidTimeRange(uint64(firstTime), uint64(lastTime));
        }
        uint64 count = _anchoredCount;
        if (index != count) revert WrongIndex(uint64(index), count);
        bytes32 last = _lastRoot;
        if (previousRoot != last) revert WrongPreviousRoot(previousRoot, last);
        (address signer, , uint8 roles) = _standing(_hashTypedDataV4(h), signature);
        if (roles & _REGULATOR == 0) revert NotRegulator(signer);
        _lastRoot = root;
        _anchoredCount = count + 1;
        emit BatchAnchored(
            uint64(index), root, uint64(size), previousRoot, uint64(firstTime), uint64(lastTime), signer
        );
    }

    /// @inheritdoc ITraceRegistry
    function anchoredCount() external view returns (uint64) {
        return _anchoredCount;
    }

    /// @inheritdoc ITraceRegistry
    function lastRoot() external view returns (bytes32) {
        return _lastRoot;
    }

    /// @inheritdoc ITraceRegistry
    function isCommitted(bytes32 id) external view returns (bool) {
        return _committed[id];
    }

    /// @inheritdoc ITraceRegistry
    function hashCodeBatch(CodeBatch calldata batch_) external view returns (bytes32) {
        return _hashTypedDataV4(_codeBatchHash(batch_));
    }

    /// @inheritdoc ITraceRegistry
    function hashAnchor(Anchor calldata a) external view returns (bytes32) {
        return _hashTypedDataV4(_anchorHash(a));
    }

    // shape of a code batch

    /// @dev Reverts with {InvalidGtin} unless `gtin` is 14 ASCII digits whose last is the GS1 mod-10 check digit of
    /// the first 13 (weights 3, 1, 3, ... from the right of those 13, i.e. 3 at even positions from the left). The
    /// 14 bytes are read as one word.
    function _checkGtin(string calldata gtin) private pure {
        if (bytes(gtin).length != 14) revert InvalidGtin(gtin);
        uint256 word;
        assembly ("memory-safe") {
            word := calldataload(gtin.offset)
        }
        uint256 sum;
        unchecked {
            for (uint256 i; i < 14; ++i) {
                uint256 c = uint8(bytes1(bytes32(word << (i << 3))));
                if ((_DIGITS >> c) & 1 == 0) revert InvalidGtin(gtin);
                if (i == 13) {
                    if (c - 0x30 != (10 - (sum % 10)) % 10) revert InvalidGtin(gtin);
                } else {
                    sum += (c - 0x30) * (i & 1 == 0 ? 3 : 1);
                }
            }
        }
    }

    /// @dev Reverts with {InvalidLot} unless `lot` is 1 to 20 bytes of the GS1 AI encodable set 82 without '/'
    /// ({_LOT_CHARS}, what `node_bridge.trace.check_lot` accepts). The at most 20 bytes are read as one word.
    function _checkLot(string calldata lot) private pure {
        uint256 length = bytes(lot).length;
        if (length == 0 || length > 20) revert InvalidLot(lot);
        uint256 word;
        assembly ("memory-safe") {
            word := calldataload(lot.offset)
        }
        unchecked {
            for (uint256 i; i < length; ++i) {
                if ((_LOT_CHARS >> uint8(bytes1(bytes32(word << (i << 3))))) & 1 == 0) revert InvalidLot(lot);
            }
        }
    }

    // hashing (EIP-712 hashStruct)

    /// @dev hashStruct(batch): typehash ‖ producer ‖ keccak256(gtin) ‖ keccak256(lot) ‖ count ‖ root ‖ nonce
    /// (a `string` field is encoded as the keccak256 of its UTF-8 bytes).
    function _codeBatchHash(CodeBatch calldata b) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                _CODE_BATCH_TYPEHASH,
                b.producer,
                keccak256(bytes(b.gtin)),
                keccak256(bytes(b.lot)),
                b.count,
                b.root,
                b.nonce
            )
        );
    }

    /// @dev hashStruct(a): typehash ‖ the six words of the (static) struct, copied from calldata. The uint64
    /// fields must be clean, as Solidity's accessors require (reverts with no data otherwise).
    function _anchorHash(Anchor calldata a) private pure returns (bytes32 h) {
        bytes32 typehash = _ANCHOR_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), a, 0xc0)
            let dirty := or(
                or(shr(64, mload(add(m, 0x20))), shr(64, mload(add(m, 0x60)))),
                or(shr(64, mload(add(m, 0xa0))), shr(64, mload(add(m, 0xc0))))
            )
            if dirty { revert(0, 0) }
            h := keccak256(m, 0xe0)
        }
    }
}
