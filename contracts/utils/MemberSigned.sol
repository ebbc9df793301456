// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IConsortium} from "../interfaces/IConsortium.sol";
import {IMemberSigned} from "../interfaces/IMemberSigned.sol";

/// @title MemberSigned
/// @notice Base of the registries that record EIP-712 messages signed by consortium members (logistics credit,
/// consumer protection, payments, supervision): recovery, the signer's standing in the Consortium, the signing
/// organisation and its roles, and one recording per message (its digest is its id, so a replay is refused).
abstract contract MemberSigned is IMemberSigned, EIP712 {
    /// @dev secp256k1n / 2: OpenZeppelin's ECDSA rejects a larger `s` (malleable signature).
    uint256 private constant _HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    IConsortium private immutable _consortium;
    mapping(bytes32 id => bool recorded) private _recorded;

    /// @param consortium_ The Consortium whose members and keys may sign.
    /// @param name The EIP-712 domain name (`credtrace <ContractName>`).
    constructor(IConsortium consortium_, string memory name) EIP712(name, "1") {
        _consortium = consortium_;
    }

    /// @inheritdoc IMemberSigned
    function consortium() external view returns (IConsortium) {
        return _consortium;
    }

    /// @inheritdoc IMemberSigned
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IMemberSigned
    function isRecorded(bytes32 id) external view returns (bool) {
        return _recorded[id];
    }

    /// @dev Accept the message whose EIP-712 `structHash` was signed with `signature`: the signer must be an active
    /// key of an Active member, sign for `organisation` and hold one of the roles `anyOf`; the message must not
    /// have been recorded before. Returns its id (the EIP-712 digest) and the signer, and marks it recorded.
    function _accept(bytes32 structHash, bytes calldata signature, bytes32 organisation, uint8 anyOf)
        internal
        returns (bytes32 id, address signer)
    {
        id = _hashTypedDataV4(structHash);
        if (_recorded[id]) revert AlreadyRecorded(id);
        bytes32 actual;
        uint8 roles;
        (signer, actual, roles) = _standing(id, signature);
        if (actual != organisation) revert IssuerMismatch(organisation, actual);
        if (roles & anyOf == 0) revert MissingRole(signer, anyOf);
        _recorded[id] = true;
    }

    /// @dev The signer of `digest`, its organisation and that organisation's roles; reverts with
    /// {NotActiveSigner} unless it is an active key of an Active member.
    function _standing(bytes32 digest, bytes calldata signature)
        internal
        view
        returns (address signer, bytes32 organisation, uint8 roles)
    {
        signer = _recover(digest, signature);
        // `_consortium.signerStanding(signer)`, by hand (about 1,000 gas less than the high-level call): revert
        // data is bubbled up, short or ill-typed answers revert empty, as Solidity's call would.
        IConsortium consortium_ = _consortium;
        bytes4 selector = IConsortium.signerStanding.selector;
        uint256 answer;
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
            answer := mload(0x20)
        }
        if (answer > type(uint8).max) revert();
        roles = uint8(answer);
        if (roles == 0) revert NotActiveSigner(signer);
    }

    /// @dev OpenZeppelin's `ECDSA.tryRecoverCalldata`, every error reported as {InvalidSignature}: 65 bytes
    /// (r, s, v), `s` at most half the curve order, and an address out of the precompile.
    function _recover(bytes32 digest, bytes calldata signature) internal view returns (address signer) {
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
}
