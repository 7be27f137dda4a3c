/** Who is reading, as the services' visibility rules take it: a customer sees their own, an admin all. */
export interface Viewer { userId: string; isAdmin: boolean }

/**
 * Who may pay or cancel an order: a customer (their own orders), or the holder of a guest
 * order's access token (`orderAccess`: the one order it opens, already checked by the route).
 */
export interface Buyer { userId: string | null; orderAccess?: string }
export const ownsOrder = (buyer: Buyer, order: { id: string; userId: string | null }) =>
  buyer.orderAccess !== undefined ? buyer.orderAccess === order.id : buyer.userId !== null && order.userId === buyer.userId
