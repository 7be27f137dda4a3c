import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import { Accepted } from '../../src/schema-types.js'
import {
  Address, AddressCreate, AddressList, AddressParams, AddressUpdate, DataExport, DataExportDownloadQuery, DataExportParams, EmailChange,
  ErasureConfirm, ErasureRequest, PasswordChange, ProfileUpdate, RoleChange, User, UserIdParams, UserListQuery, UserPage,
} from './schemas.js'


const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { users: service, uploads, dataExports, erasure } = app.services
  const admin = app.requireRole('admin')
  // Routes that check the current password are guessing targets too: counted per account (as
  // sign-in is), whatever token or address the attempts come from.
  const passwordChecks = app.limitBy({ name: 'password-check', max: app.config.auth.rateLimitPerAccount, windowSeconds: 15 * 60, key: (req) => req.user.sub })

  // The signed-in user's own account.
  app.get('/me', {
    onRequest: app.authenticate,
    schema: { tags: ['users'], operationId: 'getMe', summary: 'Read my account', security: BEARER, response: { 200: Type.Ref(User), 401: ProblemRef } },
  }, (req) => service.get(req.user.sub))

  app.patch('/me', {
    onRequest: app.authenticate,
    schema: { tags: ['users'], operationId: 'updateMe', summary: 'Update my profile', security: BEARER, body: Type.Ref(ProfileUpdate), response: { 200: Type.Ref(User), 400: ProblemRef, 401: ProblemRef } },
  }, async (req) => {
    if (req.body.avatarId) await uploads.requireImages([req.body.avatarId], 'avatar', req.user.sub)
    return service.updateProfile(req.user.sub, req.body)
  })

  app.post('/me/email', {
    onRequest: app.authenticate, preHandler: passwordChecks,
    schema: {
      tags: ['users'], operationId: 'changeMyEmail', summary: 'Ask to move my account to another email address (password required)', security: BEARER,
      description: 'Answers 202 the same way whether or not the new address has an account, so it cannot be used to find out who is a customer. '
        + 'A free address gets a link that makes the change when posted to POST /auth/verify-email; the owner of a taken one is told instead; my current address is told either way.',
      body: Type.Ref(EmailChange), response: { 202: Type.Ref(Accepted), 400: ProblemRef, 401: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    await service.changeEmail(req.user.sub, req.body)
    return reply.code(202).send({ message: 'Open the link mailed to the new address to finish the change' })
  })

  app.post('/me/password', {
    onRequest: app.authenticate, preHandler: passwordChecks,
    schema: {
      tags: ['users'], operationId: 'changeMyPassword', summary: 'Change my password; my other sessions end', security: BEARER,
      body: Type.Ref(PasswordChange), response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    await service.changePassword(req.user.sub, req.user.sid, req.body)
    return reply.code(204).send(null)
  })

  app.get('/me/addresses', {
    onRequest: app.authenticate,
    schema: { tags: ['users'], operationId: 'listMyAddresses', summary: 'List my addresses, default first', security: BEARER, response: { 200: Type.Ref(AddressList), 401: ProblemRef } },
  }, (req) => service.listAddresses(req.user.sub))

  app.post('/me/addresses', {
    onRequest: app.authenticate,
    schema: {
      tags: ['users'], operationId: 'createMyAddress', summary: 'Add an address (the first one becomes the default)', security: BEARER,
      body: Type.Ref(AddressCreate), response: { 201: Type.Ref(Address), 400: ProblemRef, 401: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => reply.code(201).send(await service.createAddress(req.user.sub, req.body)))

  app.get('/me/addresses/:addressId', {
    onRequest: app.authenticate,
    schema: { tags: ['users'], operationId: 'getMyAddress', summary: 'Read one of my addresses', security: BEARER, params: AddressParams, response: { 200: Type.Ref(Address), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef } },
  }, (req) => service.getAddress(req.user.sub, req.params.addressId))

  app.patch('/me/addresses/:addressId', {
    onRequest: app.authenticate,
    schema: {
      tags: ['users'], operationId: 'updateMyAddress', summary: 'Change one of my addresses', security: BEARER,
      params: AddressParams, body: Type.Ref(AddressUpdate), response: { 200: Type.Ref(Address), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, (req) => service.updateAddress(req.user.sub, req.params.addressId, req.body))

  app.delete('/me/addresses/:addressId', {
    onRequest: app.authenticate,
    schema: { tags: ['users'], operationId: 'deleteMyAddress', summary: 'Delete one of my addresses', security: BEARER, params: AddressParams, response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef } },
  }, async (req, reply) => {
    await service.deleteAddress(req.user.sub, req.params.addressId)
    return reply.code(204).send(null)
  })

  // My data: an export to download, and erasure.
  // Each builds an archive or sends a mail: counted per account like the password checks.
  const dataRequests = app.limitBy({ name: 'data-request', max: app.config.auth.rateLimitPerAccount, windowSeconds: 15 * 60, key: (req) => req.user.sub })

  app.post('/me/export', {
    onRequest: app.authenticate, preHandler: dataRequests,
    schema: {
      tags: ['users'], operationId: 'requestMyDataExport', summary: 'Ask for an export of everything the shop holds about me', security: BEARER,
      description: 'The worker gathers my account, addresses, sign-in links, orders with items and payments, returns, reviews, cart, wishlist, activity and uploaded files '
        + 'into one tar.gz (data.json plus the files). Read the export until it is ready; it then offers a short-lived download link. Asking again while one is pending answers that one.',
      response: { 202: Type.Ref(DataExport), 401: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => reply.code(202).send(await dataExports.request(req.user.sub)))

  app.get('/me/export/:exportId', {
    onRequest: app.authenticate,
    schema: {
      tags: ['users'], operationId: 'getMyDataExport', summary: 'Read one of my data exports; a ready one comes with a fresh download link', security: BEARER,
      params: DataExportParams, response: { 200: Type.Ref(DataExport), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, (req) => dataExports.get(req.user.sub, req.params.exportId))

  app.get('/me/export/:exportId/download', {
    schema: {
      tags: ['users'], operationId: 'downloadMyDataExport', summary: 'Download a data export through its short-lived link',
      description: 'The link (downloadUrl of a ready export) is the key: no bearer token, so a browser can follow it. A wrong or expired token is a 404.',
      params: DataExportParams, querystring: DataExportDownloadQuery,
      response: {
        200: { description: 'the archive: data.json and files/', content: { 'application/gzip': { schema: Type.String({ format: 'binary' }) } } },
        302: { description: 'with object storage (STORAGE=s3): to a presigned link of the store, valid S3_SIGNED_URL_TTL_SECONDS' },
        400: ProblemRef, 404: ProblemRef,
      },
    },
  }, async (req, reply) => {
    const { row, signedUrl, stream } = await dataExports.download(req.params.exportId, req.query.token)
    if (signedUrl) return reply.header('cache-control', 'private, no-store').redirect(signedUrl, 302)
    reply.type('application/gzip')
      .header('content-disposition', `attachment; filename="shop-data-${row.id}.tar.gz"`)
      .header('cache-control', 'private, no-store')
    if (row.sizeBytes !== null) reply.header('content-length', row.sizeBytes)
    return reply.send(stream() as never)
  })

  app.post('/me/erasure', {
    onRequest: app.authenticate, preHandler: dataRequests,
    schema: {
      tags: ['users'], operationId: 'requestMyErasure', summary: 'Ask to erase my account; a confirmation link is mailed', security: BEARER,
      description: 'Refused (409) while I have an unpaid order (urn:problem-type:erasure-unpaid-order) or an open return (erasure-open-return). '
        + 'Nothing happens until the mailed token is posted to POST /users/me/erasure/confirm.',
      response: { 202: Type.Ref(Accepted), 401: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    await erasure.ask(req.user.sub)
    return reply.code(202).send({ message: 'Open the link mailed to your address to confirm the erasure' })
  })

  app.post('/me/erasure/confirm', {
    onRequest: app.authenticate, preHandler: dataRequests,
    schema: {
      tags: ['users'], operationId: 'confirmMyErasure', summary: 'Confirm the erasure of my account with the mailed token; it starts at once and cannot be undone', security: BEARER,
      description: 'The account is deactivated and its sessions end; the worker then removes or anonymises everything personal across the stores. '
        + 'Orders and payments are kept for accounting with my name, email and address replaced. 409 erasure-token-invalid for a used, expired or foreign token; '
        + '409 erasure-unpaid-order / erasure-open-return as for the request.',
      body: Type.Ref(ErasureConfirm), response: { 202: Type.Ref(ErasureRequest), 400: ProblemRef, 401: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    const { tombstoneId: _anonymous, ...request } = await erasure.confirm(req.user.sub, req.body.token)
    return reply.code(202).send(request)
  })

  // Administration.
  app.post('/:userId/erasure', {
    onRequest: admin,
    schema: {
      tags: ['users'], operationId: 'eraseUser', summary: "Erase an account on its owner's request (admin)", security: BEARER,
      description: 'For an owner who asked outside the shop, after checking who asks. The same workflow as POST /users/me/erasure/confirm, with the same 409s; '
        + 'an admin account must be made a customer first. Recorded in the activity log as an admin action (naming the anonymous account the kept orders move to).',
      params: UserIdParams, response: { 202: Type.Ref(ErasureRequest), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    const { tombstoneId, ...request } = await erasure.startByAdmin(req.user.sub, req.params.userId)
    // The audit entry names the anonymous account the kept orders move to: the person's id is erased.
    req.auditParams = { userId: tombstoneId, erasureId: request.id }
    return reply.code(202).send(request)
  })

  app.get('', {
    onRequest: admin,
    schema: {
      tags: ['users'], operationId: 'listUsers', summary: 'List and search accounts (admin)', security: BEARER,
      querystring: UserListQuery, response: { 200: Type.Ref(UserPage), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef },
    },
  }, (req) => service.list(paged(req.query)))

  app.get('/:userId', {
    onRequest: admin,
    schema: { tags: ['users'], operationId: 'getUser', summary: 'Read an account (admin)', security: BEARER, params: UserIdParams, response: { 200: Type.Ref(User), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef } },
  }, (req) => service.get(req.params.userId))

  app.patch('/:userId/role', {
    onRequest: admin,
    schema: {
      tags: ['users'], operationId: 'changeUserRole', summary: "Change an account's role; its sessions end (admin)", security: BEARER,
      params: UserIdParams, body: Type.Ref(RoleChange), response: { 200: Type.Ref(User), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => service.setRole(req.user.sub, req.params.userId, req.body.role))

  app.post('/:userId/deactivate', {
    onRequest: admin,
    schema: {
      tags: ['users'], operationId: 'deactivateUser', summary: 'Deactivate an account; it cannot sign in and its sessions end (admin)', security: BEARER,
      params: UserIdParams, response: { 200: Type.Ref(User), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => service.setActive(req.user.sub, req.params.userId, false))

  app.delete('/:userId/two-factor', {
    onRequest: admin,
    schema: {
      tags: ['users'], operationId: 'clearUserTwoFactor', summary: "Clear an account's two-factor authentication; its sessions end (admin)", security: BEARER,
      description: 'For an owner who lost both authenticator and recovery codes, after checking who asks outside the shop (a password reset keeps 2FA on purpose). '
        + 'Recorded in the activity log as an admin action; the owner is told by mail.',
      params: UserIdParams, response: { 200: Type.Ref(User), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => app.services.auth.adminClearTotp(req.params.userId))

  app.post('/:userId/reactivate', {
    onRequest: admin,
    schema: {
      tags: ['users'], operationId: 'reactivateUser', summary: 'Reactivate an account (admin)', security: BEARER,
      params: UserIdParams, response: { 200: Type.Ref(User), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => service.setActive(req.user.sub, req.params.userId, true))
}
export default usersRoutes
