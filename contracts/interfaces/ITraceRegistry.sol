// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IMemberSigned} from "./IMemberSigned.sol";

/// @title Product traceability of credtrace: committed code batches and anchored checkpoint batches
/// @notice Producers commit each batch of serialized trace codes as one RFC 6962 Merkle root over the code ids
/// (`CodeBatch`), and the anchorer chains the roots of batches of signed checkpoint events (`Anchor`): index,
/// root, size, the previous root and the time range. Both are EIP-712 messages (domain "credtrace TraceRegistry",
/// version "1", types as in `node_bridge/trace.py`) that any relayer submits; the contract checks the signer's
/// standing in the Consortium and the role itself. No code or event is stored one by one: a commit costs one
/// flag, an anchor rewrites the last root and the count. Every signed field is in an event, so an index can be
/// rebuilt from the chain alone.
interface ITraceRegistry is IMemberSigned {
    /// @notice A batch of `count` trace codes of lot `lot` of trade item `gtin` (GTIN-14), committed by the
    /// PRODUCER `producer` (its Consortium id) as `root`, the RFC 6962 (SHA-256) root over the codes' ids
    /// (`keccak256` of each GS1 Digital Link path), in leaf order. `nonce` makes twin batches distinct. The GTIN
    /// (check digit included) and the lot are checked on chain as `node_bridge.trace` checks them.
    struct CodeBatch {
        bytes32 producer;
        string gtin;
        string lot;
        uint32 count;
        bytes32 root;
        uint256 nonce;
    }

    /// @notice The `index`-th anchored batch (from 0): the RFC 6962 root over `size` checkpoint event digests,
    /// the root anchored before it (`previousRoot`, zero for the first), and the earliest and latest event time
    /// in the batch (unix seconds). `size` is 1 to 2^48 - 1, `lastTime` at most 2^40 - 1.
    struct Anchor {
        uint64 index;
        bytes32 root;
        uint64 size;
        bytes32 previousRoot;
        uint64 firstTime;
        uint64 lastTime;
    }

    /// @notice A code batch was committed; `id` is its EIP-712 digest.
    event CodesCommitted(
        bytes32 indexed id,
        bytes32 indexed producer,
        string gtin,
        string lot,
        uint32 count,
        bytes32 root,
        address signer
    );
    /// @notice A batch root was anchored at position `index` of the chain of roots.
    event BatchAnchored(
        uint64 indexed index,
        bytes32 root,
        uint64 size,
        bytes32 previousRoot,
        uint64 firstTime,
        uint64 lastTime,
        address signer
    );
    /// @notice The batch names producer `claimed` but `signer` signs for `actual`.
    error ProducerMismatch(bytes32 claimed, bytes32 actual);
    /// @notice The signer's organisation does not hold PRODUCER.
    error NotProducer(address signer);
    /// @notice The signer's organisation does not hold REGULATOR.
    error NotRegulator(address signer);
    /// @notice A code batch of no codes.
    error EmptyBatch();
    /// @notice An anchor of no events, or of more than 2^48 - 1 (sizes and times stay within what a signed 64-bit
    /// SQL integer holds, so every index can store them).
    error InvalidSize(uint64 size);
    /// @notice The root is zero.
    error ZeroRoot();
    /// @notice `gtin` is not a GTIN-14: 14 ASCII digits, the last the GS1 mod-10 check digit of the others.
    error InvalidGtin(string gtin);
    /// @notice `lot` is not 1 to 20 characters of the GS1 AI encodable set 82 without '/' (GS1 AI 10).
    error InvalidLot(string lot);
    /// @notice Code batch `id` was committed already.
    error AlreadyCommitted(bytes32 id);
    /// @notice The anchor claims position `given` but the next position is `expected` ({anchoredCount}).
    error WrongIndex(uint64 given, uint64 expected);
    /// @notice The anchor chains to `given` but the last anchored root is `expected` ({lastRoot}).
    error WrongPreviousRoot(bytes32 given, bytes32 expected);
    /// @notice The anchor's time range ends before it starts, or ends after 2^40 - 1 (year 36812).
    error InvalidTimeRange(uint64 firstTime, uint64 lastTime);

    /// @notice Commit a code batch signed by an active key of its producer, a member holding PRODUCER. Each
    /// batch (by id) is committed once.
    function commitCodes(CodeBatch calldata batch, bytes calldata signature) external;

    /// @notice Append a batch root to the chain of anchors: `a.index` must be {anchoredCount} and
    /// `a.previousRoot` {lastRoot}. Signed by an active key of a member holding REGULATOR: the anchorer is
    /// operated by a department (it holds an anchoring key the consortium admitted for that member), so that
    /// what it anchors is as accountable as a department's decision.
    function anchor(Anchor calldata a, bytes calldata signature) external;

    /// @notice How many batch roots were anchored (the index the next anchor must carry).
    function anchoredCount() external view returns (uint64);

    /// @notice The last anchored root (zero before the first anchor).
    function lastRoot() external view returns (bytes32);

    /// @notice Whether code batch `id` (its EIP-712 digest) was committed.
    function isCommitted(bytes32 id) external view returns (bool);

    /// @notice The id (EIP-712 digest) of a code batch.
    function hashCodeBatch(CodeBatch calldata batch) external view returns (bytes32);

    /// @notice The EIP-712 digest of an anchor.
    function hashAnchor(Anchor calldata a) external view returns (bytes32);
}
