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

    /// @notice Run `calls` (ABI-encoded calls to this contract) in order, each independently.
    /// @param calls The encoded calls.
    /// @return ok For each call, whether it succeeded.
    function batch(bytes[] calldata calls) external returns (bool[] memory ok) {
        ok = new bool[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool success, bytes memory reason) = address(this).delegatecall(calls[i]);
            ok[i] = success;
            if (!success) {
                emit BatchCallFailed(i, reason);
            }
        }
    }
}
