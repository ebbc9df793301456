// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title BatchCall
/// @notice Lets a relayer carry many signed writes in one transaction. Each call runs against this contract
/// as if sent alone (delegatecall to itself keeps storage and checks); a call that reverts is reported by
/// `BatchCallFailed` with its revert data and does not undo the others.
/// @dev Only for contracts whose writes authorise by signature, not by msg.sender.
abstract contract BatchCall {
    /// @notice A call of a batch reverted; `reason` is its revert data (a custom error), empty if out of gas.
    /// @param index Position of the call in the batch.
    /// @param reason The revert data.
    event BatchCallFailed(uint256 indexed index, bytes reason);

    /// @notice A batch holds more than {MAX_BATCH} calls.
    error BatchTooLarge(uint256 size, uint256 max);

    /// @notice The most calls one batch may carry (a block's gas bounds it anyway; this fails early and clearly).
    uint256 public constant MAX_BATCH = 1000;

    /// @notice Run `calls` (ABI-encoded calls to this contract) in order, each independently.
    /// @dev Gas: `address(this).delegatecall(calls[i])` would copy every call into fresh memory and copy back its
    /// return data, so memory (priced quadratically) grows with the whole batch. Here each call is copied to the
    /// same scratch place just past `ok` (the free memory pointer is not moved, so memory only grows to the largest
    /// call), the delegatecall returns nothing into memory, and only a failed call's revert data is copied, to that
    /// same place, to be logged. Virtual so that a contract can wrap the batch (e.g. open a cache scope).
    /// @param calls The encoded calls.
    /// @return ok For each call, whether it succeeded.
    function batch(bytes[] calldata calls) public virtual returns (bool[] memory ok) {
        if (calls.length > MAX_BATCH) revert BatchTooLarge(calls.length, MAX_BATCH);
        ok = new bool[](calls.length);
        bytes32 failed = BatchCallFailed.selector;
        for (uint256 i; i < calls.length; ) {
            assembly ("memory-safe") {
                // data = calls[i], with the checks of Solidity's accessor (i < calls.length holds): the element's
                // offset and length must be sane and its bytes within calldata, else revert with no data.
                let rel := calldataload(add(calls.offset, shl(5, i)))
                if iszero(slt(rel, sub(sub(calldatasize(), calls.offset), 0x1f))) { revert(0, 0) }
                let at := add(calls.offset, rel)
                let length := calldataload(at)
                if gt(length, 0xffffffffffffffff) { revert(0, 0) }
                at := add(at, 0x20)
                if sgt(at, sub(calldatasize(), length)) { revert(0, 0) }

                let scratch := mload(0x40)
                calldatacopy(scratch, at, length)
                let success := delegatecall(gas(), address(), scratch, length, 0, 0)
                mstore(add(add(ok, 0x20), shl(5, i)), success) // ok[i] = success
                if iszero(success) {
                    // emit BatchCallFailed(i, reason): the data is abi.encode(reason) = 0x20, length, the bytes
                    // zero-padded to a whole word (the last word is zeroed before the copy).
                    let size := returndatasize()
                    mstore(scratch, 0x20)
                    mstore(add(scratch, 0x20), size)
                    mstore(add(add(scratch, 0x40), and(size, not(31))), 0)
                    returndatacopy(add(scratch, 0x40), 0, size)
                    log2(scratch, add(0x40, and(add(size, 31), not(31))), failed, i)
                }
            }
            unchecked {
                ++i;
            }
        }
    }
}
