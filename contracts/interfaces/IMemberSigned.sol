// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortium} from "./IConsortium.sol";

/// @title IMemberSigned
/// @notice What every registry taking EIP-712 messages signed by consortium members shares: the errors of a
/// signature, a signer's standing and a replay, and the views a verifier needs to hash messages itself.
interface IMemberSigned {
    /// @notice The signature is not 65 bytes, has a high `s`, or recovers no address.
    error InvalidSignature();
    /// @notice The signer is not an active key of an Active member.
    error NotActiveSigner(address signer);
    /// @notice The signer's organisation holds none of the roles `required` (a bit set of `Consortium` roles).
    error MissingRole(address signer, uint8 required);
    /// @notice The message names `named` as its signing organisation, but the signer signs for `actual`.
    error IssuerMismatch(bytes32 named, bytes32 actual);
    /// @notice This signed message (its EIP-712 digest `id`) was already recorded.
    error AlreadyRecorded(bytes32 id);

    /// @notice The Consortium this registry trusts for members, roles and keys.
    function consortium() external view returns (IConsortium);

    /// @notice The EIP-712 domain separator messages to this registry are signed under.
    function domainSeparator() external view returns (bytes32);

    /// @notice Whether the signed message with EIP-712 digest `id` was recorded here.
    function isRecorded(bytes32 id) external view returns (bool);
}
